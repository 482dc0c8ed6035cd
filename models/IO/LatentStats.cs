using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>
/// Per-element latent statistics from stat.pt (§2.1, §9.1), float32 on the CPU, shaped like one latent ([C, H, W]; a
/// stored leading 1, [1, C, H, W], is removed — spec §13 item 16). A missing <c>mean</c> reads as zeros and a missing
/// <c>var</c> as ones of the other's shape; <see cref="HasMean"/> / <see cref="HasVar"/> tell which were stored.
/// A file with neither is refused: it is almost certainly not a statistics file.
/// </summary>
public sealed class LatentStats : IDisposable
{
    private LatentStats(Tensor mean, Tensor var, bool hasMean, bool hasVar)
    {
        Mean = mean;
        Var = var;
        HasMean = hasMean;
        HasVar = hasVar;
    }

    public Tensor Mean { get; }

    public Tensor Var { get; }

    public bool HasMean { get; }

    public bool HasVar { get; }

    public long[] Shape => Mean.shape;

    public void Dispose()
    {
        Mean.Dispose();
        Var.Dispose();
    }

    /// <summary>Builds the statistics from loaded entries (copies them; the caller keeps ownership of <paramref name="entries"/>).</summary>
    public static LatentStats FromEntries(IReadOnlyDictionary<string, Tensor> entries, string source, long[]? expectedLatentShape = null)
    {
        entries.TryGetValue("mean", out var storedMean);
        entries.TryGetValue("var", out var storedVar);
        if (storedMean is null && storedVar is null)
            throw new CheckpointFormatException(source, $"no 'mean' or 'var' entry, so this is not a latent statistics file (keys: {string.Join(", ", entries.Keys.Take(8))})");

        using var scope = NewDisposeScope();
        var mean = storedMean is null ? null : Normalise(storedMean, "mean", source);
        var var = storedVar is null ? null : Normalise(storedVar, "var", source);
        if (mean is not null && var is not null && !mean.shape.SequenceEqual(var.shape))
            throw new CheckpointFormatException(source, $"'mean' has shape [{string.Join(", ", mean.shape)}] but 'var' has [{string.Join(", ", var.shape)}]");
        mean ??= zeros_like(var!);
        var ??= ones_like(mean);
        if (expectedLatentShape is not null && !mean.shape.SequenceEqual(expectedLatentShape))
            throw new CheckpointFormatException(source,
                $"the statistics have shape [{string.Join(", ", mean.shape)}] but the latent is [{string.Join(", ", expectedLatentShape)}]");
        if (var.lt(0).any().item<bool>())
            throw new CheckpointFormatException(source, "'var' has negative entries");
        return new LatentStats(mean.MoveToOuterDisposeScope(), var.MoveToOuterDisposeScope(), storedMean is not null, storedVar is not null);
    }

    private static Tensor Normalise(Tensor stored, string name, string source)
    {
        if (!stored.is_floating_point())
            throw new CheckpointFormatException(source, $"'{name}' has dtype {stored.dtype}, expected a floating-point tensor");
        if (stored.dim() == 0)
            throw new CheckpointFormatException(source, $"'{name}' is a scalar; expected per-element statistics shaped like the latent [C, H, W]");
        var shaped = stored.dim() == 4 && stored.shape[0] == 1 ? stored.squeeze(0)
            : stored.dim() == 4 ? throw new CheckpointFormatException(source, $"'{name}' has shape [{string.Join(", ", stored.shape)}]; a 4-D statistic must have a leading 1")
            : stored.alias();
        return shaped.to(ScalarType.Float32).clone();
    }
}
