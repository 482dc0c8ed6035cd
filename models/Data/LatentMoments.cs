using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>
/// Exact per-position mean and (population) variance over every latent seen, kept as float64 count / mean / M2 and
/// combined with Chan et al.'s pairwise update, so that per-shard moments merged in any order and any grouping agree
/// with a single pass over all latents to well below 1e-6 relative. Latents are <c>[n, C, H, W]</c> (or any
/// <c>[n, …]</c>); the statistics have the shape of one latent.
/// </summary>
public sealed class LatentMoments : IDisposable
{
    private LatentMoments(long count, Tensor mean, Tensor sumOfSquaredDeviations)
    {
        Count = count;
        Mean = mean;
        SumOfSquaredDeviations = sumOfSquaredDeviations;
    }

    public long Count { get; private set; }

    /// <summary>float64, shaped like one latent.</summary>
    public Tensor Mean { get; private set; }

    /// <summary>float64 Σ(x − mean)², shaped like one latent.</summary>
    public Tensor SumOfSquaredDeviations { get; private set; }

    public long[] LatentShape => Mean.shape;

    public static LatentMoments Empty(long[] latentShape) =>
        new(0, zeros(latentShape, ScalarType.Float64), zeros(latentShape, ScalarType.Float64));

    /// <summary>The moments of one batch <c>[n, …]</c>.</summary>
    public static LatentMoments Of(Tensor latents)
    {
        if (latents.dim() < 2) throw new ArgumentException($"latents must be [n, ...], got shape [{string.Join(", ", latents.shape)}]");
        if (!latents.is_floating_point()) throw new ArgumentException($"latents must be floating point, got {latents.dtype}");
        using var scope = NewDisposeScope();
        var values = latents.detach().to(ScalarType.Float64, CPU);
        var mean = values.mean([0L]);
        var m2 = values.sub(mean).square().sum(0L);
        return new LatentMoments(latents.shape[0], mean.DetachFromDisposeScope(), m2.DetachFromDisposeScope());
    }

    public static LatentMoments FromParts(long count, Tensor mean, Tensor sumOfSquaredDeviations)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"count must not be negative, got {count}");
        if (!mean.shape.SequenceEqual(sumOfSquaredDeviations.shape))
            throw new ArgumentException($"mean [{string.Join(", ", mean.shape)}] and M2 [{string.Join(", ", sumOfSquaredDeviations.shape)}] differ in shape");
        return new LatentMoments(count, mean.to(ScalarType.Float64, CPU, copy: true), sumOfSquaredDeviations.to(ScalarType.Float64, CPU, copy: true));
    }

    public void Add(Tensor latents)
    {
        using var batch = Of(latents);
        Merge(batch);
    }

    /// <summary>Folds <paramref name="other"/> into this accumulator (Chan's parallel update).</summary>
    public void Merge(LatentMoments other)
    {
        if (!other.LatentShape.SequenceEqual(LatentShape))
            throw new ArgumentException($"cannot merge latent statistics of shape [{string.Join(", ", other.LatentShape)}] into [{string.Join(", ", LatentShape)}]");
        if (other.Count == 0) return;
        using var scope = NewDisposeScope();
        var total = Count + other.Count;
        var delta = other.Mean.sub(Mean);
        var newMean = Mean.add(delta.mul((double)other.Count / total));
        var newM2 = SumOfSquaredDeviations.add(other.SumOfSquaredDeviations).add_(delta.square().mul_((double)Count * other.Count / total));
        Mean.Dispose();
        SumOfSquaredDeviations.Dispose();
        // Owned by this accumulator, not by any dispose scope of the caller: it outlives the call.
        Mean = newMean.DetachFromDisposeScope();
        SumOfSquaredDeviations = newM2.DetachFromDisposeScope();
        Count = total;
    }

    /// <summary>Mean and population variance as float32, in the reference's <c>stat.pt</c> layout <c>[C, H, W]</c>.</summary>
    public (Tensor Mean, Tensor Var) Statistics()
    {
        if (Count == 0) throw new InvalidOperationException("no latents were added, so there are no statistics");
        using var scope = NewDisposeScope();
        var mean = Mean.to(ScalarType.Float32);
        var variance = SumOfSquaredDeviations.div(Count).to(ScalarType.Float32);
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope());
    }

    /// <summary>Writes <c>{mean, var}</c> as a torch.save file (the reference's stat.pt) and, beside it, a safetensors copy.</summary>
    public void SaveStatistics(string statPtPath, string? safetensorsPath = null)
    {
        var (mean, variance) = Statistics();
        using (mean)
        using (variance)
        {
            var entries = new[] { KeyValuePair.Create("mean", mean), KeyValuePair.Create("var", variance) };
            TorchSaveWriter.Save(statPtPath, entries);
            if (safetensorsPath is not null) SafeTensors.Save(safetensorsPath, entries);
        }
    }

    /// <summary>Serialises count, mean and M2 (safetensors) so that per-shard moments can be stored and merged later.</summary>
    public byte[] ToBytes()
    {
        using var count = tensor(new[] { Count }, ScalarType.Int64);
        using var output = new MemoryStream();
        SafeTensors.Save(output, [new("count", count), new("mean", Mean), new("m2", SumOfSquaredDeviations)]);
        return output.ToArray();
    }

    public static LatentMoments FromBytes(byte[] bytes, string nameForErrors)
    {
        using var input = new MemoryStream(bytes, writable: false);
        var entries = SafeTensors.Load(input, nameForErrors);
        try
        {
            if (!entries.TryGetValue("count", out var count) || !entries.TryGetValue("mean", out var mean) || !entries.TryGetValue("m2", out var m2))
                throw new InvalidDataException($"{nameForErrors} is not a latent moments file (needs count, mean and m2)");
            return FromParts(count.item<long>(), mean, m2);
        }
        finally
        {
            foreach (var tensor in entries.Values) tensor.Dispose();
        }
    }

    public void Dispose()
    {
        Mean.Dispose();
        SumOfSquaredDeviations.Dispose();
    }
}

/// <summary>
/// The reference's one-pass statistic (spec §9.1), for users who want its numbers: per element, running mean 0 and
/// running variance 1 to start, and for each batch <c>r ← (1 − momentum)·r + momentum·batch</c> with the batch mean and
/// the biased batch variance. Depends on batch size and order by design.
/// </summary>
public sealed class MomentumLatentStats(long[] latentShape, double momentum = 0.1) : IDisposable
{
    public Tensor RunningMean { get; private set; } = zeros(latentShape, ScalarType.Float32);

    public Tensor RunningVar { get; private set; } = ones(latentShape, ScalarType.Float32);

    public void Add(Tensor latents)
    {
        if (!latents.shape.Skip(1).SequenceEqual(RunningMean.shape))
            throw new ArgumentException($"latents [{string.Join(", ", latents.shape)}] do not match the statistics shape [{string.Join(", ", RunningMean.shape)}]");
        using var scope = NewDisposeScope();
        var values = latents.detach().to(ScalarType.Float32, CPU);
        var batchMean = values.mean([0L]);
        var batchVar = values.var(0, unbiased: false);
        var mean = RunningMean.mul(1 - momentum).add_(batchMean.mul(momentum));
        var variance = RunningVar.mul(1 - momentum).add_(batchVar.mul(momentum));
        RunningMean.Dispose();
        RunningVar.Dispose();
        RunningMean = mean.DetachFromDisposeScope();
        RunningVar = variance.DetachFromDisposeScope();
    }

    /// <summary>The reference's cross-rank combination: mean of means, and mean of variances plus the spread of the means (clamped ≥ 0).</summary>
    public static (Tensor Mean, Tensor Var) CombineRanks(IReadOnlyList<MomentumLatentStats> ranks)
    {
        if (ranks.Count == 0) throw new ArgumentException("at least one rank's statistics are needed", nameof(ranks));
        using var scope = NewDisposeScope();
        var means = stack(ranks.Select(rank => rank.RunningMean).ToArray());
        var variances = stack(ranks.Select(rank => rank.RunningVar).ToArray());
        var mean = means.mean([0L]);
        var variance = variances.mean([0L]).add(means.square().mean([0L])).sub(mean.square()).clamp_min(0);
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope());
    }

    public void Dispose()
    {
        RunningMean.Dispose();
        RunningVar.Dispose();
    }
}
