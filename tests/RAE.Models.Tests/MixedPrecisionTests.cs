using RAE.Configuration;
using System.Text.Json;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using RAE.Models.Training;
using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class MixedPrecisionTests
{
    internal static readonly DiTwDDTHeadOptions Tiny = new()
    {
        InputSize = 4, InChannels = 8, HiddenSize = new(64, 96), Depth = new(2, 1), NumHeads = new(4, 4), NumClasses = 10,
    };

    /// <summary>
    /// 200 AdamW steps of a tiny DiT^DH on a fixed 32-sample latent set, fp32 and bf16 from the same initial weights with
    /// the same noise and times per step. Tolerance: every 20-step mean loss of the bf16 run within 2% of the fp32 run's
    /// (bf16 keeps 8 mantissa bits, ~0.4% per rounding; measured: within 0.02%). The curves must also differ (bf16 really ran)
    /// and both must learn (the last window's loss well below the first's).
    /// </summary>
    [Fact]
    public async Task Bf16TrainingFollowsTheFp32LossCurveOver200Steps()
    {
        // Each run in a single-threaded child process, both at once: quick even on a loaded 2-core machine.
        var runs = await Task.WhenAll(new[] { "fp32", "bf16" }.Select(precision => Task.Run(() =>
            JsonSerializer.Deserialize<LossCurve>(ProbeProgram.Run(new Dictionary<string, string>(), "--loss-curve", precision))!)));
        var (fp32, bf16) = (runs[0].Losses, runs[1].Losses);
        Assert.Equal(200, fp32.Count);
        Assert.Equal(200, bf16.Count);
        Assert.All(runs.SelectMany(run => run.ParameterAndGradientTypes), dtype => Assert.Equal(nameof(ScalarType.Float32), dtype));
        Assert.NotEqual(fp32, bf16);
        var fp32Windows = Windows(fp32, 20);
        var bf16Windows = Windows(bf16, 20);
        for (var i = 0; i < fp32Windows.Count; i++)
        {
            var relative = Math.Abs(bf16Windows[i] - fp32Windows[i]) / fp32Windows[i];
            Assert.True(relative <= 0.02, $"steps {20 * i}-{20 * i + 19}: bf16 mean loss {bf16Windows[i]:F5} vs fp32 {fp32Windows[i]:F5} ({relative:P2})");
        }
        Assert.True(fp32Windows[^1] < 0.8 * fp32Windows[0], $"fp32 did not learn: {fp32Windows[0]:F4} → {fp32Windows[^1]:F4}");
        Assert.True(bf16Windows[^1] < 0.8 * bf16Windows[0], $"bf16 did not learn: {bf16Windows[0]:F4} → {bf16Windows[^1]:F4}");
    }

    [Fact]
    public void Bf16AutocastRunsTheMatmulsInBf16AndReturnsFp32()
    {
        using var scope = NewDisposeScope();
        using var model = new DiTwDDTHead(Tiny, new Generator(3, CPU));
        model.eval();
        using var noGrad = no_grad();
        var generator = new Generator(4, CPU);
        var x = randn([2, 8, 4, 4], generator: generator);
        var t = rand([2], generator: generator);
        var y = tensor(new long[] { 1, 7 });
        // Non-zero adaLN and output weights, so that every matmul reaches the output.
        foreach (var parameter in model.parameters()) parameter.add_(randn(parameter.shape, generator: generator) * 0.02);
        var reference = model.forward(x, t, y);
        Tensor half, cached;
        using (Autocast.Enter(ComputePrecision.BFloat16))
        {
            Assert.Equal(ComputePrecision.BFloat16, Autocast.CurrentPrecision);
            half = model.forward(x, t, y);
        }
        using (Autocast.Enter(ComputePrecision.BFloat16, cacheWeights: true))
        {
            model.forward(x, t, y);
            cached = model.forward(x, t, y);
        }
        Assert.Equal(ComputePrecision.Float32, Autocast.CurrentPrecision);
        Assert.Equal(ScalarType.Float32, half.dtype);
        Assert.True(reference.allclose(model.forward(x, t, y), 0, 0), "outside the scope the model is fp32 again");
        var error = (half - reference).abs().max().item<float>();
        var scale = reference.abs().max().item<float>();
        Assert.True(error > 0, "bf16 autocast gave the fp32 result bit for bit: the matmuls did not run in bf16");
        Assert.True(error < 0.05 * scale, $"bf16 output differs by {error} at scale {scale}");
        Assert.True(half.allclose(cached, 0, 0), "cached weight casts must give the uncached result");
    }

    [Fact]
    public void PrecisionNamesParseAndBadOnesAreNamed()
    {
        Assert.Equal(ComputePrecision.BFloat16, ComputePrecisions.Parse("bf16"));
        Assert.Equal("fp32", ComputePrecisions.Parse("fp32").Name());
        var error = Assert.Throws<ArgumentException>(() => ComputePrecisions.Parse("fp16"));
        Assert.Contains("'fp16'", error.Message);
    }

    /// <summary>The losses of the 200 steps, and the dtypes of the parameters and gradients after them.</summary>
    public static LossCurve TrainTiny(ComputePrecision precision)
    {
        using var scope = NewDisposeScope();
        using var model = new DiTwDDTHead(Tiny, new Generator(11, CPU));
        model.eval(); // no label dropout, so both runs see the same labels
        var data = new Generator(12, CPU);
        var latents = randn([32, 8, 4, 4], generator: data) * 0.5 + linspace(-1, 1, 8).view(1, 8, 1, 1);
        var labels = randint(10, [32], generator: data);
        var schedule = new LearningRateSchedule(1e-3, 1e-3, 0, 0, DecayShape.Linear, warmupFromZero: false);
        using var trainer = new Stage2TrainingStep(model, FlowTransport.Create(), schedule,
            clipGrad: 1.0, precision: precision);
        var draws = new Generator(13, CPU);
        var losses = new List<double>();
        for (var step = 0; step < 200; step++)
        {
            using var stepScope = NewDisposeScope();
            var batch = randperm(32, generator: draws)[..16];
            var x0 = randn([16, 8, 4, 4], generator: draws);
            var t = rand([16], generator: draws);
            losses.Add(trainer.Run((x, time, y) => model.forward(x, time, y), latents[batch], labels[batch], x0, t).Loss);
        }
        var types = model.parameters().Select(p => p.dtype).Concat(
            model.parameters().Where(p => p.grad is not null).Select(p => p.grad!.dtype)).Select(type => type.ToString()).ToList();
        return new LossCurve(losses, types);
    }

    private static List<double> Windows(IReadOnlyList<double> values, int size) =>
        Enumerable.Range(0, values.Count / size).Select(i => values.Skip(i * size).Take(size).Average()).ToList();
}
