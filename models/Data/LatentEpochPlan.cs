namespace RAE.Models.Data;

/// <summary>Where a training step's global batch lies in the data: epoch, batch offset within it, and the permutation seed.</summary>
public readonly record struct DataPosition(long Epoch, long Offset, long PermutationSeed);

/// <summary>One sample of a rank's share of a global batch: its dataset index and its slot in the global batch.</summary>
public readonly record struct PlannedSample(long DatasetIndex, int GlobalSlot);

/// <summary>
/// Real epochs over a dataset of <see cref="DatasetSize"/> samples, as the reference's DistributedSampler (shuffle,
/// drop_last) and DataLoader (drop_last) give them: epoch e is <c>torch.randperm(n)</c> seeded with <c>seed + e</c>
/// (<see cref="DistributedEpochSampler"/>), rank r of W takes positions r, r + W, r + 2W, … of it, and each step takes the
/// next <c>global batch / W</c> of the rank's list. Local position j of rank r is slot <c>j·W + r</c> of the global batch,
/// so global batch k of an epoch is always positions [k·G, (k+1)·G) of the permutation, whatever the rank count: a job that
/// re-forms with fewer ranks consumes the same samples, and per-sample draws keyed by the global slot are unchanged.
/// Steps are counted from 1 and run on across epochs (epoch = (step − 1) / steps per epoch).
/// </summary>
public sealed class LatentEpochPlan
{
    private readonly DistributedEpochSampler _sampler;
    private readonly Lock _cache = new();
    private long _cachedEpoch = -1;
    private long[] _cachedIndices = [];

    public LatentEpochPlan(long datasetSize, int globalBatch, int worldSize, int rank, long seed)
    {
        if (globalBatch <= 0) throw new ArgumentOutOfRangeException(nameof(globalBatch), globalBatch, "the global batch must be positive");
        if (worldSize <= 0 || globalBatch % worldSize != 0)
            throw new ArgumentException($"the global batch {globalBatch} must be a multiple of the rank count {worldSize}", nameof(worldSize));
        if (datasetSize < globalBatch)
            throw new ArgumentException($"the dataset holds {datasetSize} samples, fewer than the global batch {globalBatch}: with drop_last no step would have a batch", nameof(datasetSize));
        _sampler = new DistributedEpochSampler(datasetSize, worldSize, rank, seed, dropLast: true);
        GlobalBatch = globalBatch;
        LocalBatch = globalBatch / worldSize;
    }

    public long DatasetSize => _sampler.DatasetSize;

    public int GlobalBatch { get; }

    /// <summary>Samples of one rank per step (all its micro-batches).</summary>
    public int LocalBatch { get; }

    public int WorldSize => _sampler.WorldSize;

    public int Rank => _sampler.Rank;

    public long Seed => _sampler.Seed;

    /// <summary>Whole global batches per epoch (drop_last): ⌊n / G⌋, the same for every rank count.</summary>
    public long StepsPerEpoch => DatasetSize / GlobalBatch;

    public DataPosition PositionOf(long step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "steps are counted from 1");
        var epoch = (step - 1) / StepsPerEpoch;
        return new DataPosition(epoch, (step - 1) % StepsPerEpoch, Seed + epoch);
    }

    /// <summary>This rank's samples [<paramref name="first"/>, +<paramref name="count"/>) of its share of step <paramref name="step"/>.</summary>
    public PlannedSample[] Samples(long step, int first, int count)
    {
        if (first < 0 || count < 0 || first + count > LocalBatch)
            throw new ArgumentOutOfRangeException(nameof(count), $"samples [{first}, {first + count}) lie outside the rank's {LocalBatch} per step");
        var position = PositionOf(step);
        var indices = IndicesOf(position.Epoch);
        var start = position.Offset * LocalBatch + first;
        var samples = new PlannedSample[count];
        for (var j = 0; j < count; j++)
            samples[j] = new PlannedSample(indices[start + j], (first + j) * WorldSize + Rank);
        return samples;
    }

    private long[] IndicesOf(long epoch)
    {
        lock (_cache)
        {
            if (epoch != _cachedEpoch)
            {
                _cachedIndices = _sampler.Indices(epoch);
                _cachedEpoch = epoch;
            }
            return _cachedIndices;
        }
    }
}
