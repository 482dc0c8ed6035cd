using static TorchSharp.torch;

namespace RAE.Grains.Sampling;

/// <summary>Class labels of a whole sampling job and the per-unit seeds, fixed by the job seed alone (never by the workers).</summary>
public static class SamplingLabels
{
    /// <summary>
    /// <c>equal</c>: every class repeated ⌊N / classes⌋ times, permuted with a CPU generator seeded with the job seed, then
    /// N mod classes uniform extra labels from the same generator (sample_ddp.py, spec §8.2); <c>random</c>: N uniform labels
    /// from a generator seeded with the job seed.
    /// </summary>
    public static int[] Compute(string mode, int samples, int classes, long seed)
    {
        if (samples <= 0) throw new ArgumentOutOfRangeException(nameof(samples), samples, "the number of samples must be positive");
        if (classes <= 0) throw new ArgumentOutOfRangeException(nameof(classes), classes, "the number of classes must be positive");
        using var scope = NewDisposeScope();
        using var generator = new Generator(unchecked((ulong)seed));
        Tensor labels;
        switch (mode)
        {
            case "equal":
                var perClass = samples / classes;
                var pool = arange(classes, dtype: ScalarType.Int64).repeat_interleave(perClass);
                var permuted = pool[randperm(pool.shape[0], generator: generator)];
                var extra = samples - pool.shape[0];
                labels = extra > 0 ? cat([permuted, randint(classes, [extra], dtype: ScalarType.Int64, generator: generator)], 0) : permuted;
                break;
            case "random":
                labels = randint(classes, [samples], dtype: ScalarType.Int64, generator: generator);
                break;
            default:
                throw new ArgumentException($"label mode '{mode}' is unknown; expected 'equal' or 'random'", nameof(mode));
        }
        return labels.data<long>().Select(label => (int)label).ToArray();
    }

    /// <summary>The seed of one unit: a SplitMix64 mix of (job seed, unit index), so a unit's noise is the same whoever runs it.</summary>
    public static long UnitSeed(long jobSeed, int unit)
    {
        unchecked
        {
            var z = (ulong)jobSeed + 0x9E3779B97F4A7C15UL * (ulong)(unit + 1);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (long)((z ^ (z >> 31)) & long.MaxValue);
        }
    }
}
