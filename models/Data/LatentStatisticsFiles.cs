using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>The two statistics files of a latent dataset, as bytes: <c>stat.pt</c> (torch.save) and <c>stat.safetensors</c>.</summary>
public sealed record LatentStatisticsBytes(byte[] StatPt, byte[] Safetensors, long Count);

/// <summary>
/// Builds a latent dataset's statistics files: exact (per-shard float64 moments merged in shard order) or the reference's
/// momentum rule over the latents in shard order, in batches that run across shard boundaries (spec §9.1).
/// </summary>
public static class LatentStatisticsFiles
{
    /// <summary><c>{mean, var}</c> (float32 <c>[C, H, W]</c>) as torch.save and safetensors bytes.</summary>
    public static LatentStatisticsBytes Write(Tensor mean, Tensor variance, long count)
    {
        var entries = new[] { KeyValuePair.Create("mean", mean), KeyValuePair.Create("var", variance) };
        using var statPt = new MemoryStream();
        TorchSaveWriter.Save(statPt, entries);
        using var safetensors = new MemoryStream();
        SafeTensors.Save(safetensors, entries);
        return new LatentStatisticsBytes(statPt.ToArray(), safetensors.ToArray(), count);
    }

    /// <summary>Merges per-shard moments files (<see cref="LatentMoments.ToBytes"/>) in the order given.</summary>
    public static LatentStatisticsBytes Exact(long[] latentShape, IEnumerable<(string Name, byte[] Bytes)> momentsFiles)
    {
        using var total = LatentMoments.Empty(latentShape);
        foreach (var (name, bytes) in momentsFiles)
        {
            using var shard = LatentMoments.FromBytes(bytes, name);
            total.Merge(shard);
        }
        var (mean, variance) = total.Statistics();
        using (mean)
        using (variance)
            return Write(mean, variance, total.Count);
    }
}

/// <summary>
/// The reference's momentum statistic fed with latents in order: batches of <c>batchSize</c> are cut from the stream
/// (running across the calls to <see cref="Add"/>), and the last partial batch counts too (no drop_last, as the
/// reference's sampler).
/// </summary>
public sealed class MomentumLatentStream(long[] latentShape, int batchSize) : IDisposable
{
    private readonly MomentumLatentStats _stats = new(latentShape);
    private Tensor? _carry;

    public long Count { get; private set; }

    public void Add(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var values = latents.to(ScalarType.Float32);
        if (_carry is not null) values = cat([_carry, values], 0);
        long start = 0;
        for (; values.shape[0] - start >= batchSize; start += batchSize)
            _stats.Add(values.narrow(0, start, batchSize));
        var rest = values.narrow(0, start, values.shape[0] - start).clone();
        _carry?.Dispose();
        _carry = rest.shape[0] > 0 ? rest.DetachFromDisposeScope() : null;
        Count += latents.shape[0];
    }

    public LatentStatisticsBytes Finish()
    {
        if (Count == 0) throw new InvalidOperationException("no latents were added, so there are no statistics");
        if (_carry is not null)
        {
            _stats.Add(_carry);
            _carry.Dispose();
            _carry = null;
        }
        var (mean, variance) = MomentumLatentStats.CombineRanks([_stats]);
        using (mean)
        using (variance)
            return LatentStatisticsFiles.Write(mean, variance, Count);
    }

    public void Dispose()
    {
        _carry?.Dispose();
        _stats.Dispose();
    }
}
