using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>
/// torch.utils.data.DistributedSampler with shuffle, as the reference's training loops use it (spec §4.2, §7.2): the
/// epoch's order is <c>torch.randperm(n)</c> from a CPU generator seeded with <c>seed + epoch</c>; without drop_last the
/// list is padded by repeating its head to a multiple of the world size, with drop_last it is cut to one; rank r takes
/// positions r, r + W, r + 2W, …. The DataLoader's own drop_last then keeps only whole batches (<see cref="Batches"/>).
/// </summary>
public sealed class DistributedEpochSampler
{
    public DistributedEpochSampler(long datasetSize, int worldSize, int rank, long seed, bool dropLast = false)
    {
        if (datasetSize <= 0) throw new ArgumentOutOfRangeException(nameof(datasetSize), $"the dataset is empty (size {datasetSize})");
        if (worldSize <= 0) throw new ArgumentOutOfRangeException(nameof(worldSize), $"world size must be positive, got {worldSize}");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside [0, {worldSize})");
        if (dropLast && datasetSize < worldSize)
            throw new ArgumentException($"with drop_last, {datasetSize} samples cannot give every one of {worldSize} ranks a sample");
        DatasetSize = datasetSize;
        WorldSize = worldSize;
        Rank = rank;
        Seed = seed;
        DropLast = dropLast;
        SamplesPerRank = dropLast && datasetSize % worldSize != 0
            ? (datasetSize - worldSize + worldSize - 1) / worldSize
            : (datasetSize + worldSize - 1) / worldSize;
    }

    public long DatasetSize { get; }

    public int WorldSize { get; }

    public int Rank { get; }

    public long Seed { get; }

    public bool DropLast { get; }

    public long SamplesPerRank { get; }

    /// <summary>Whole batches per epoch for this rank when the loader drops the last partial batch.</summary>
    public long BatchesPerEpoch(int batchSize) => SamplesPerRank / batchSize;

    /// <summary>This rank's dataset indices for the epoch, in order.</summary>
    public long[] Indices(long epoch)
    {
        using var generator = new Generator((ulong)(Seed + epoch));
        using var permutation = randperm(DatasetSize, generator: generator, dtype: ScalarType.Int64);
        var order = permutation.data<long>().ToArray();
        var total = SamplesPerRank * WorldSize;
        var padded = new long[total];
        for (long i = 0; i < total; i++) padded[i] = order[i % order.LongLength];
        var mine = new long[SamplesPerRank];
        for (long i = 0; i < SamplesPerRank; i++) mine[i] = padded[Rank + i * WorldSize];
        return mine;
    }

    /// <summary>The epoch's batches for this rank (the DataLoader with drop_last: a trailing partial batch is dropped).</summary>
    public IEnumerable<long[]> Batches(long epoch, int batchSize)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch size must be positive, got {batchSize}");
        var indices = Indices(epoch);
        for (long batch = 0; batch < indices.LongLength / batchSize; batch++)
            yield return indices[(int)(batch * batchSize)..(int)((batch + 1) * batchSize)];
    }
}
