namespace RAE.Models.Data;

/// <summary>
/// A small counter-based generator (SplitMix64) for data augmentation. A stream is fixed by (seed, epoch, sample index),
/// so an image's crop and flip do not depend on which worker handles it or in which order: a resumed or re-sharded job
/// makes the same choices.
/// </summary>
public sealed class DataRandom
{
    private ulong _state;

    public DataRandom(ulong seed) => _state = seed;

    public static DataRandom ForSample(long seed, long epoch, long sampleIndex)
    {
        var mixed = Mix((ulong)seed ^ 0x52414544415441UL);
        mixed = Mix(mixed ^ (ulong)epoch);
        return new DataRandom(Mix(mixed ^ (ulong)sampleIndex));
    }

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, <paramref name="exclusiveMax"/>), without modulo bias.</summary>
    public int NextInt(int exclusiveMax)
    {
        if (exclusiveMax <= 0) throw new ArgumentOutOfRangeException(nameof(exclusiveMax), $"must be positive, got {exclusiveMax}");
        var bound = (ulong)exclusiveMax;
        var limit = ulong.MaxValue - ulong.MaxValue % bound;
        ulong draw;
        do draw = NextUInt64();
        while (draw >= limit);
        return (int)(draw % bound);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
