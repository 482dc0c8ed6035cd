using static TorchSharp.torch;

namespace RAE.Models.Stage1;

/// <summary>
/// Per-element latent statistics (reference <c>stat.pt</c>): z ← (z − mean)/√(var + eps) and its exact inverse.
/// Mean and var have the latent's shape [C,H,W] or [1,C,H,W] (spec §13.16: both accepted); either may be absent
/// (treated as 0 and 1; normalisation stays active, as in the reference, whose code would fail on an absent var).
/// The instance holds float32 copies of the statistics and is owned by whoever created it.
/// </summary>
public sealed class LatentNormalization : IDisposable
{
    public LatentNormalization(Tensor? mean, Tensor? variance, double eps = 1e-5)
    {
        Mean = mean is null ? null : Canonical(mean, "mean");
        Variance = variance is null ? null : Canonical(variance, "var");
        if (Mean is not null && Variance is not null && !Mean.shape.SequenceEqual(Variance.shape))
            throw new ArgumentException($"latent statistics: mean shape [{string.Join(",", Mean.shape)}] differs from var shape [{string.Join(",", Variance.shape)}]");
        if (Variance is not null && HasNegative(Variance))
            throw new ArgumentException("latent statistics: var has negative entries");
        Eps = eps;
    }

    /// <summary>Mean as [1,C,H,W] float32 (or null).</summary>
    public Tensor? Mean { get; }

    /// <summary>Variance as [1,C,H,W] float32 (or null).</summary>
    public Tensor? Variance { get; }

    public double Eps { get; }

    public Tensor Normalize(Tensor latent)
    {
        using var scope = NewDisposeScope();
        var result = Mean is null ? latent.alias() : latent - Check(Mean, latent).to(latent.device);
        result = result / Std(latent);
        return result.MoveToOuterDisposeScope();
    }

    public Tensor Denormalize(Tensor latent)
    {
        using var scope = NewDisposeScope();
        var result = latent * Std(latent);
        if (Mean is not null) result = result + Check(Mean, latent).to(latent.device);
        return result.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Mean?.Dispose();
        Variance?.Dispose();
    }

    private Tensor Std(Tensor latent) => Variance is null
        ? tensor(Math.Sqrt(1 + Eps), ScalarType.Float32, latent.device)
        : (Check(Variance, latent).to(latent.device) + Eps).sqrt();

    private static Tensor Check(Tensor statistic, Tensor latent)
    {
        if (latent.dim() != statistic.dim() || !latent.shape.Skip(1).SequenceEqual(statistic.shape.Skip(1)))
            throw new ArgumentException(
                $"latent statistics of shape [{string.Join(",", statistic.shape.Skip(1))}] do not match the latent [{string.Join(",", latent.shape)}]");
        return statistic;
    }

    private static bool HasNegative(Tensor variance)
    {
        using var scope = NewDisposeScope();
        return variance.lt(0).any().item<bool>();
    }

    private static Tensor Canonical(Tensor statistic, string name)
    {
        if (statistic.dim() != 3 && !(statistic.dim() == 4 && statistic.shape[0] == 1))
            throw new ArgumentException(
                $"latent statistics: '{name}' must have shape [C,H,W] or [1,C,H,W], got [{string.Join(",", statistic.shape)}]");
        using var scope = NewDisposeScope();
        var shape = statistic.shape.TakeLast(3).Prepend(1L).ToArray();
        return statistic.detach().to(ScalarType.Float32).reshape(shape).clone().MoveToOuterDisposeScope();
    }
}
