namespace RAE.Models.Training;

/// <summary>
/// A training step whose loss or synchronised global gradient norm is NaN or infinite. It is raised before clipping,
/// AdamW and EMA, so the parameters, the optimizer state and the EMA are left exactly as they were.
/// </summary>
public sealed class NonFiniteTrainingException : Exception
{
    public NonFiniteTrainingException(long step, double? loss, double gradientNorm)
        : base(FormattableString.Invariant($"step {step}: non-finite loss/gradient norm (loss {Describe(loss)}, gradient norm {gradientNorm}); the update was skipped"))
    {
        Step = step;
        Loss = loss;
        GradientNorm = gradientNorm;
    }

    /// <summary>The 1-based number of the step that was skipped (the step a training job reports).</summary>
    public long Step { get; }

    /// <summary>The loss checked with the gradients; null when the caller had no loss that every replica shares.</summary>
    public double? Loss { get; }

    public double GradientNorm { get; }

    private static string Describe(double? loss) => loss is { } value ? value.ToString(System.Globalization.CultureInfo.InvariantCulture) : "not checked";
}
