using RAE.Configuration;
using RAE.Models.Sampling;
using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class SamplerGuidanceTests
{
    /// <summary>Records which forward was called; outputs encode the call so the wiring is visible.</summary>
    private sealed class RecordingModel : IGuidedVelocityModel
    {
        public List<string> Calls { get; } = [];

        public long NullClass => 10;

        public Tensor Forward(Tensor x, Tensor t, Tensor y)
        {
            Calls.Add("forward");
            return x * 0 + 1;
        }

        public Tensor ForwardWithCfg(Tensor x, Tensor t, Tensor y, double scale, (double Min, double Max) interval)
        {
            Calls.Add($"cfg {scale} {interval.Min} {interval.Max}");
            return x * 0 + 2;
        }

        public Tensor ForwardWithAutoguidance(Tensor x, Tensor t, Tensor y, double scale, ConditionalModelFunction guide, (double Min, double Max) interval)
        {
            Calls.Add($"autoguidance {scale} {interval.Min} {interval.Max}");
            return guide(x, t, y) * scale;
        }
    }

    [Fact]
    public void BatchIsDoubledWithNullLabelsLikeSamplePy()
    {
        using var scope = NewDisposeScope();
        var z = randn(2, 3, 4, 4);
        var (doubled, labels) = GuidedSampling.DoubleBatch(z, tensor(new long[] { 207, 360 }), 1000);
        Assert.Equal(new long[] { 4, 3, 4, 4 }, doubled.shape);
        Assert.True(doubled[..2].equal(z).all().item<bool>() && doubled[2..].equal(z).all().item<bool>());
        Assert.Equal(new long[] { 207, 360, 1000, 1000 }, labels.data<long>().ToArray());
        Assert.Throws<ArgumentException>(() => GuidedSampling.DoubleBatch(z, tensor(new long[] { 1, 2, 3 }), 1000));
    }

    [Fact]
    public void TheScaleAndMethodChooseTheForwardWithTheInterval()
    {
        using var scope = NewDisposeScope();
        var model = new RecordingModel();
        var x = zeros(2, 1);
        var t = ones(2);
        var y = tensor(new long[] { 1, 10 });
        GuidedSampling.CreateModelFunction(model, y, new GuidanceConfig { Method = GuidanceMethod.Cfg, Scale = 1.0 })(x, t);
        GuidedSampling.CreateModelFunction(model, y, new GuidanceConfig { Method = GuidanceMethod.Cfg, Scale = 2.5, TMin = 0.2, TMax = 0.8 })(x, t);
        var guided = GuidedSampling.CreateModelFunction(model, y, new GuidanceConfig { Method = GuidanceMethod.Autoguidance, Scale = 1.42 }, (gx, gt, gy) => gx * 0 + 3)(x, t);
        Assert.Equal(new[] { "forward", "cfg 2.5 0.2 0.8", "autoguidance 1.42 0 1" }, model.Calls);
        Assert.True(guided.allclose(full_like(x, 3 * 1.42)));
        Assert.Contains("guidance model", Assert.Throws<ArgumentException>(() =>
            GuidedSampling.CreateModelFunction(model, y, new GuidanceConfig { Method = GuidanceMethod.Autoguidance, Scale = 2.0 })).Message);
        Assert.Contains("t_min < t_max", Assert.Throws<ArgumentException>(() =>
            GuidedSampling.CreateModelFunction(model, y, new GuidanceConfig { Method = GuidanceMethod.Cfg, Scale = 2.0, TMin = 0.8, TMax = 0.2 })).Message);
        Assert.Contains("'cfg'", Assert.Throws<ArgumentException>(() => GuidanceConfig.ParseMethod("classifier")).Message);
    }

    [Fact]
    public void TrainingLossesDrawNoiseAndTimesFromASeededGenerator()
    {
        using var scope = NewDisposeScope();
        var transport = FlowTransport.Create(timeDistType: "logit-normal_0_1", timeDistShift: Math.Sqrt(48));
        var x1 = randn(6, 2, 3, 3);
        ModelFunction model = (x, t) => x * 0.5;
        using var first = new Generator(11, CPU);
        using var second = new Generator(11, CPU);
        using var a = transport.TrainingLosses(model, x1, generator: first);
        using var b = transport.TrainingLosses(model, x1, generator: second);
        Assert.True(a.Loss.equal(b.Loss).all().item<bool>() && a.T.equal(b.T).all().item<bool>());
        Assert.True(a.T.min().item<float>() >= 0f && a.T.max().item<float>() <= 0.999f);
        Assert.True(a.Xt.allclose((1 - a.T.view(6, 1, 1, 1)) * x1 + a.T.view(6, 1, 1, 1) * a.X0, 1e-6, 1e-6));
    }
}
