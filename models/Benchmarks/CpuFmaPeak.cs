using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace RAE.Models.Benchmarks;

/// <summary>
/// The CPU's fp32 arithmetic ceiling measured in this run: FMAs of the widest vectors the CPU has (512-bit with AVX-512F,
/// else 256-bit) on independent registers, one set of chains per thread.
/// </summary>
public sealed record CpuFmaPeak(int Threads, double GflopsPerSecond, int VectorBits = 256);

/// <summary>
/// Measures how many fp32 FLOP/s the cores can retire at all (12 independent FMA chains per thread, enough to hide FMA
/// latency on current x86 cores; 16-wide where the CPU has AVX-512F, else 8-wide), so a benchmark can state its lower bound on time: no fp32 kernel, MKL included, can
/// run faster than this. Null where the CPU has no FMA.
/// </summary>
public static class CpuFmaPeakProbe
{
    private static float sink;

    /// <summary>
    /// All threads start together (a barrier) and the run lasts until the slowest finishes; the ceiling is the best of
    /// <paramref name="repeats"/> short runs, so one that another process interrupted does not pull it down.
    /// </summary>
    public static CpuFmaPeak? Measure(int threads, long iterationsPerRun = 25_000_000, int repeats = 8)
    {
        if (!Fma.IsSupported || !Avx.IsSupported) return null;
        if (threads < 1) throw new ArgumentException($"threads must be at least 1, got {threads}");
        var wide = Avx512F.IsSupported;
        Func<long, float> run = wide ? RunChains512 : RunChains256;
        sink = run(1_000_000);
        var best = 0.0;
        var lanes = wide ? Vector512<float>.Count : Vector256<float>.Count;
        var flops = threads * iterationsPerRun * 12.0 * 2 * lanes;
        for (var repeat = 0; repeat < repeats; repeat++)
        {
            using var start = new Barrier(threads);
            var seconds = new double[threads];
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, thread =>
            {
                start.SignalAndWait();
                var watch = Stopwatch.StartNew();
                var result = run(iterationsPerRun);
                seconds[thread] = watch.Elapsed.TotalSeconds;
                if (float.IsNaN(result)) sink = result;
            });
            best = Math.Max(best, flops / seconds.Max() / 1e9);
        }
        return new CpuFmaPeak(threads, best, lanes * 32);
    }

    private static float RunChains256(long iterations)
    {
        var a0 = Vector256.Create(1f);
        var (a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11) = (a0, a0, a0, a0, a0, a0, a0, a0, a0, a0, a0);
        var multiplier = Vector256.Create(0.9999999f);
        var addend = Vector256.Create(1e-7f);
        for (var i = 0L; i < iterations; i++)
        {
            a0 = Fma.MultiplyAdd(a0, multiplier, addend);
            a1 = Fma.MultiplyAdd(a1, multiplier, addend);
            a2 = Fma.MultiplyAdd(a2, multiplier, addend);
            a3 = Fma.MultiplyAdd(a3, multiplier, addend);
            a4 = Fma.MultiplyAdd(a4, multiplier, addend);
            a5 = Fma.MultiplyAdd(a5, multiplier, addend);
            a6 = Fma.MultiplyAdd(a6, multiplier, addend);
            a7 = Fma.MultiplyAdd(a7, multiplier, addend);
            a8 = Fma.MultiplyAdd(a8, multiplier, addend);
            a9 = Fma.MultiplyAdd(a9, multiplier, addend);
            a10 = Fma.MultiplyAdd(a10, multiplier, addend);
            a11 = Fma.MultiplyAdd(a11, multiplier, addend);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static float RunChains512(long iterations)
    {
        var a0 = Vector512.Create(1f);
        var (a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11) = (a0, a0, a0, a0, a0, a0, a0, a0, a0, a0, a0);
        var multiplier = Vector512.Create(0.9999999f);
        var addend = Vector512.Create(1e-7f);
        for (var i = 0L; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, multiplier, addend);
            a1 = Avx512F.FusedMultiplyAdd(a1, multiplier, addend);
            a2 = Avx512F.FusedMultiplyAdd(a2, multiplier, addend);
            a3 = Avx512F.FusedMultiplyAdd(a3, multiplier, addend);
            a4 = Avx512F.FusedMultiplyAdd(a4, multiplier, addend);
            a5 = Avx512F.FusedMultiplyAdd(a5, multiplier, addend);
            a6 = Avx512F.FusedMultiplyAdd(a6, multiplier, addend);
            a7 = Avx512F.FusedMultiplyAdd(a7, multiplier, addend);
            a8 = Avx512F.FusedMultiplyAdd(a8, multiplier, addend);
            a9 = Avx512F.FusedMultiplyAdd(a9, multiplier, addend);
            a10 = Avx512F.FusedMultiplyAdd(a10, multiplier, addend);
            a11 = Avx512F.FusedMultiplyAdd(a11, multiplier, addend);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
