using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage2;

/// <summary>
/// The training stream of a DiT^DH job on synthetic class-conditional latents, defined per global sample so that the
/// result never depends on how many ranks share a batch.
/// <list type="bullet">
/// <item>Data set sample j: label j mod K, latent = class mean + <see cref="NoiseScale"/>·N(0, I), the class mean N(0, I)
/// from a generator seeded by (data seed, class), the noise from one seeded by (data seed, j).</item>
/// <item>Order: like DistributedSampler (shuffle, drop_last), a permutation of the data set per epoch from a generator
/// seeded by (data seed, epoch); global batch of step s (1-based) = positions [(s−1)·G, s·G) of the concatenated epochs.</item>
/// <item>Per-step draws of global slot k of step s (noise x0, uniform u for the time, uniform for label dropout): a generator
/// seeded by (job seed, s, k). Nothing is carried between steps, so the RNG state at any step is (seed, step).</item>
/// </list>
/// </summary>
public sealed class SyntheticLatentStream : IDisposable
{
    public const double NoiseScale = 0.5;
    private const ulong ClassStream = 0x636C617373UL, SampleStream = 0x73616D706CUL, EpochStream = 0x65706F6368UL, StepStream = 0x73746570UL;

    private readonly long[] _shape;
    private long _cachedEpoch = -1;
    private long[] _permutation = [];

    public SyntheticLatentStream(IReadOnlyList<int> latentShape, int numClasses, int numSamples, long dataSeed, long jobSeed, int globalBatch)
    {
        if (latentShape.Count != 3 || latentShape.Any(size => size <= 0))
            throw new ArgumentException($"latent shape must be three positive sizes [C, H, W], got [{string.Join(", ", latentShape)}]", nameof(latentShape));
        if (numClasses <= 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "num_classes must be positive");
        if (globalBatch <= 0) throw new ArgumentOutOfRangeException(nameof(globalBatch), globalBatch, "the global batch must be positive");
        if (numSamples < globalBatch)
            throw new ArgumentException($"data.num_samples {numSamples} is smaller than the global batch {globalBatch} (drop_last would leave no batch)", nameof(numSamples));
        _shape = latentShape.Select(size => (long)size).ToArray();
        NumClasses = numClasses;
        NumSamples = numSamples;
        DataSeed = dataSeed;
        JobSeed = jobSeed;
        GlobalBatch = globalBatch;
    }

    public int NumClasses { get; }
    public int NumSamples { get; }
    public long DataSeed { get; }
    public long JobSeed { get; }
    public int GlobalBatch { get; }
    public long StepsPerEpoch => NumSamples / GlobalBatch;

    /// <summary>The data-set index at slot <paramref name="slot"/> of the global batch of step <paramref name="step"/> (1-based).</summary>
    public long DatasetIndex(long step, int slot)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "steps are counted from 1");
        if (slot < 0 || slot >= GlobalBatch) throw new ArgumentOutOfRangeException(nameof(slot), slot, $"slot must lie in [0, {GlobalBatch})");
        var epoch = (step - 1) / StepsPerEpoch;
        var offset = (step - 1) % StepsPerEpoch * GlobalBatch + slot;
        return Permutation(epoch)[offset];
    }

    /// <summary>Everything the loss of slots [<paramref name="firstSlot"/>, +count) of step <paramref name="step"/> needs, on <paramref name="device"/>.</summary>
    public TrainingBatch Batch(long step, int firstSlot, int count, Device device)
    {
        using var scope = NewDisposeScope();
        var latents = new Tensor[count];
        var noises = new Tensor[count];
        var labels = new long[count];
        var timeUniforms = new float[count];
        var dropUniforms = new float[count];
        for (var i = 0; i < count; i++)
        {
            var slot = firstSlot + i;
            var index = DatasetIndex(step, slot);
            labels[i] = index % NumClasses;
            latents[i] = Latent(index);
            (noises[i], timeUniforms[i], dropUniforms[i]) = SlotDraws(JobSeed, step, slot, _shape);
        }
        return new TrainingBatch(
            stack(latents).to(device).MoveToOuterDisposeScope(),
            stack(noises).to(device).MoveToOuterDisposeScope(),
            tensor(labels).to(device).MoveToOuterDisposeScope(),
            tensor(timeUniforms).to(device).MoveToOuterDisposeScope(),
            dropUniforms);
    }

    /// <summary>Data-set sample <paramref name="index"/> (CPU, float32, shape [C, H, W]).</summary>
    public Tensor Latent(long index)
    {
        using var scope = NewDisposeScope();
        using var classGenerator = new Generator(Mix(ClassStream, (ulong)DataSeed, (ulong)(index % NumClasses), 0), CPU);
        using var sampleGenerator = new Generator(Mix(SampleStream, (ulong)DataSeed, (ulong)index, 0), CPU);
        var mean = randn(_shape, generator: classGenerator);
        return mean.add_(randn(_shape, generator: sampleGenerator), NoiseScale).MoveToOuterDisposeScope();
    }

    public void Dispose() => _permutation = [];

    /// <summary>Where step <paramref name="step"/>'s global batch lies: its epoch, batch offset and the epoch permutation's seed.</summary>
    public RAE.Models.Data.DataPosition PositionOf(long step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "steps are counted from 1");
        var epoch = (step - 1) / StepsPerEpoch;
        return new RAE.Models.Data.DataPosition(epoch, (step - 1) % StepsPerEpoch, (long)Mix(EpochStream, (ulong)DataSeed, (ulong)epoch, 0));
    }

    /// <summary>
    /// The per-sample draws of global slot <paramref name="slot"/> of step <paramref name="step"/>: noise x0 of
    /// <paramref name="shape"/>, the uniform for the time and the one for label dropout, from a generator seeded by
    /// (job seed, step, slot). Every data source uses them, so they never depend on the rank count.
    /// </summary>
    internal static (Tensor Noise, float TimeUniform, float DropUniform) SlotDraws(long jobSeed, long step, int slot, long[] shape)
    {
        using var generator = new Generator(Mix(StepStream, (ulong)jobSeed, (ulong)step, (ulong)slot), CPU);
        var noise = randn(shape, generator: generator);
        using var uniforms = rand([2], generator: generator, dtype: ScalarType.Float64);
        var drawn = uniforms.data<double>();
        return (noise, (float)drawn[0], (float)drawn[1]);
    }

    private long[] Permutation(long epoch)
    {
        if (epoch == _cachedEpoch) return _permutation;
        using var generator = new Generator(Mix(EpochStream, (ulong)DataSeed, (ulong)epoch, 0), CPU);
        using var order = randperm(NumSamples, generator: generator);
        _permutation = order.data<long>().ToArray();
        _cachedEpoch = epoch;
        return _permutation;
    }

    /// <summary>A SplitMix64 hash of the stream tag and three values: independent seeds for every (stream, a, b, c).</summary>
    internal static ulong Mix(ulong stream, ulong a, ulong b, ulong c)
    {
        var state = stream;
        foreach (var value in new[] { a, b, c }) state = SplitMix(state ^ SplitMix(value + 0x9E3779B97F4A7C15UL));
        // libtorch seeds must fit an int64 for manual_seed round trips.
        return state & 0x7FFF_FFFF_FFFF_FFFFUL;
    }

    private static ulong SplitMix(ulong value)
    {
        value += 0x9E3779B97F4A7C15UL;
        value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9UL;
        value = (value ^ (value >> 27)) * 0x94D049BB133111EBUL;
        return value ^ (value >> 31);
    }
}

/// <summary>Latents x1 [b, C, H, W], noise x0, labels [b], uniforms u [b] for the time, and the label-dropout uniforms.</summary>
public sealed record TrainingBatch(Tensor Latents, Tensor Noise, Tensor Labels, Tensor TimeUniforms, float[] DropUniforms) : IDisposable
{
    public void Dispose()
    {
        Latents.Dispose();
        Noise.Dispose();
        Labels.Dispose();
        TimeUniforms.Dispose();
    }
}
