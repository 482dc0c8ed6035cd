using System.Diagnostics;
using RAE.Configuration;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Benchmarks;

/// <summary>
/// One A/B comparison of a composed autograd expression against its replacement (forward + backward on the same tensors)
/// over <paramref name="Pairs"/> alternating runs in one process: process CPU milliseconds (all threads) and wall
/// milliseconds, minimum and median. On a loaded machine contention only ever adds time, so the minimum is the closer
/// estimate of the work itself and the median shows what a busy step sees.
/// </summary>
public sealed record KernelComparison(string Kernel, string Precision, string Shape, int Pairs,
    KernelTiming Composed, KernelTiming Fused)
{
    public double? MinCpuRatio => Ratio(Fused.MinCpuMs, Composed.MinCpuMs);

    public double? MedianCpuRatio => Ratio(Fused.MedianCpuMs, Composed.MedianCpuMs);

    public double? MinWallRatio => Ratio(Fused.MinWallMs, Composed.MinWallMs);

    private static double? Ratio(double numerator, double denominator) => denominator > 0 ? numerator / denominator : null;
}

public sealed record KernelTiming(double MinCpuMs, double MedianCpuMs, double MinWallMs, double MedianWallMs)
{
    public static KernelTiming Of(IReadOnlyCollection<(double Wall, double Cpu)> runs) =>
        new(runs.Min(r => r.Cpu), Median(runs.Select(r => r.Cpu)), runs.Min(r => r.Wall), Median(runs.Select(r => r.Wall)));

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}

/// <summary>
/// `rae bench model --compare-kernels`: the fused SiLU·gate and RMSNorm nodes against the composed graphs they replace,
/// and the attention's q/k/v split by unbind against three selects, at the DiT^DH head's shapes (the largest of the
/// step), in fp32 and bf16. Pairs alternate which path runs first.
/// </summary>
public static class KernelComparisons
{
    public static IReadOnlyList<KernelComparison> Run(DiTwDDTHeadOptions options, int batch, int pairs, Device device, Action<string>? progress = null)
    {
        if (pairs < 1) throw new ArgumentException($"kernel comparison needs at least one pair, got {pairs}");
        var tokens = (long)Math.Pow(options.InputSize / options.PatchSize.Encoder, 2);
        var width = options.HiddenSize.Decoder;
        var hidden = new SwiGLUFFN(1, SwiGLUFFN.BlockHiddenSize(width, options.MlpRatio)).ComputeHiddenSize;
        var results = new List<KernelComparison>();
        foreach (var precision in new[] { ComputePrecision.Float32, ComputePrecision.BFloat16 })
        {
            using var scope = NewDisposeScope();
            var compute = precision.ScalarType();
            var projection = randn(batch, tokens, 2 * hidden, device: device).to(compute);
            var normInput = randn(batch, tokens, width, device: device).to(compute);
            var normWeight = 1 + 0.1 * randn(width, device: device);
            var heads = options.NumHeads.Decoder;
            var packed = randn(batch, tokens, 3 * width, device: device).to(compute);
            Tensor SplitHeads(Tensor qkv) => qkv.reshape(batch, tokens, 3, heads, width / heads).permute(2, 0, 3, 1, 4);
            results.Add(Compare("silu*gate", precision, projection.shape, pairs, [projection],
                i => SiluGate.Composed(i[0]), i => SiluGate.Fused(i[0])));
            results.Add(Compare("rmsnorm", precision, normInput.shape, pairs, [normInput, normWeight],
                i => RmsNormFunction.Composed(i[0], i[1], 1e-6), i => RmsNormFunction.Fused(i[0], i[1], 1e-6)));
            results.Add(Compare("qkv split (select -> unbind)", precision, packed.shape, pairs, [packed],
                i => SumOfThree(Selects(SplitHeads(i[0]))),
                i => SumOfThree(SplitHeads(i[0]).unbind(0))));
            foreach (var result in results.TakeLast(3))
                progress?.Invoke($"{result.Kernel,-28} {result.Precision,-5} {result.Shape,-14} CPU ms min/median: composed {result.Composed.MinCpuMs,6:F1} / {result.Composed.MedianCpuMs,6:F1}  " +
                                 $"new {result.Fused.MinCpuMs,6:F1} / {result.Fused.MedianCpuMs,6:F1}  ratio {result.MinCpuRatio:F2} / {result.MedianCpuRatio:F2}  (wall min ratio {result.MinWallRatio:F2}, {pairs} pairs)");
        }
        return results;
    }

    private static Tensor[] Selects(Tensor split) => [split[0], split[1], split[2]];

    private static Tensor SumOfThree(Tensor[] parts) => parts[0] + parts[1] + parts[2];

    private static KernelComparison Compare(string kernel, ComputePrecision precision, long[] shape, int pairs, Tensor[] sources,
        Func<Tensor[], Tensor> composed, Func<Tensor[], Tensor> fused)
    {
        using var scope = NewDisposeScope();
        var output = composed(sources);
        var gradient = randn(output.shape, device: output.device).to(output.dtype);
        Run(sources, gradient, composed);
        Run(sources, gradient, fused);
        var composedTimes = new List<(double Wall, double Cpu)>();
        var fusedTimes = new List<(double Wall, double Cpu)>();
        for (var pair = 0; pair < pairs; pair++)
        {
            if (pair % 2 == 0)
            {
                composedTimes.Add(Run(sources, gradient, composed));
                fusedTimes.Add(Run(sources, gradient, fused));
            }
            else
            {
                fusedTimes.Add(Run(sources, gradient, fused));
                composedTimes.Add(Run(sources, gradient, composed));
            }
        }
        return new KernelComparison(kernel, precision.Name(), string.Join('x', shape), pairs, KernelTiming.Of(composedTimes), KernelTiming.Of(fusedTimes));
    }

    /// <summary>Forward and backward of <paramref name="path"/> from fresh leaves; wall and process CPU milliseconds.</summary>
    private static (double Wall, double Cpu) Run(Tensor[] sources, Tensor gradient, Func<Tensor[], Tensor> path)
    {
        using var scope = NewDisposeScope();
        var inputs = sources.Select(s => s.detach().requires_grad_(true)).ToArray();
        // Environment.CpuUsage reads getrusage (microseconds), where Process.TotalProcessorTime counts 10 ms clock ticks.
        var cpuBefore = Environment.CpuUsage.TotalTime;
        var watch = Stopwatch.StartNew();
        path(inputs).backward([gradient]);
        var wall = watch.Elapsed.TotalMilliseconds;
        return (wall, (Environment.CpuUsage.TotalTime - cpuBefore).TotalMilliseconds);
    }
}
