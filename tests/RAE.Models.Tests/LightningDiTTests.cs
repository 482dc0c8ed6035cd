using RAE.Models.IO;
using RAE.Models.Stage2;
using TorchSharp;
using static TorchSharp.torch;
using EncoderDecoderPair = RAE.Configuration.EncoderDecoderPair;

namespace RAE.Models.Tests;

public sealed class LightningDiTTests
{
    private static readonly LightningDiTOptions Tiny = new()
    {
        InputSize = 8, PatchSize = 2, InChannels = 8, HiddenSize = 64, Depth = 2, NumHeads = 4, NumClasses = 10, UseQkNorm = true,
    };

    private static LightningDiT LoadFixtureModel()
    {
        var model = new LightningDiT(Tiny);
        var weights = Stage2TestSupport.LoadCase("lightningdit_tiny", "weights.safetensors");
        StateDictLoading.LoadStrict(model, weights, "lightningdit_tiny");
        Stage2TestSupport.DisposeAll(weights);
        model.eval();
        return model;
    }

    /// <summary>§13 item 7: without ranges (the reference default crashes) CFG applies everywhere, and t[0] alone decides.</summary>
    [Fact]
    public void CfgWithoutRangesGuidesEverywhereAndOnlyTheFirstTimeSelectsARange()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var model = LoadFixtureModel();
        var io = Stage2TestSupport.LoadCase("lightningdit_tiny", "io.safetensors");
        var x2 = io["x2"];
        var y2 = io["y2"];
        var t2 = tensor(new float[] { 0.5f, 0.1f, 0.2f, 0.5f, 0.1f, 0.2f });
        var half = x2.slice(0, 0, 3, 1);
        var both = model.forward(cat([half, half], 0), t2, y2);
        var (cond, uncond) = (both.slice(0, 0, 3, 1), both.slice(0, 3, 6, 1));
        var guided = uncond + 2.5 * (cond - uncond);

        var everywhere = model.ForwardWithCfg(x2, t2, y2, 2.5);
        Assert.True(Stage2TestSupport.MaxAbsDifference(everywhere, cat([guided, guided], 0)) < 1e-5);

        // t[0] = 0.5 lies outside [0, 0.3) although later samples lie inside: all samples are guided.
        var outside = model.ForwardWithCfg(x2, t2, y2, 2.5, [(0.0, 0.3)]);
        Assert.True(Stage2TestSupport.MaxAbsDifference(outside, everywhere) < 1e-6);
        // Half-open: t[0] = 0.3 is outside [0, 0.3), t[0] = 0 inside.
        var atUpperBound = model.ForwardWithCfg(x2, full(6, 0.3f), y2, 2.5, [(0.0, 0.3)]);
        var atLowerBound = model.ForwardWithCfg(x2, zeros(6), y2, 2.5, [(0.0, 0.3)]);
        var condAtZero = model.forward(cat([half, half], 0), zeros(6), y2).slice(0, 0, 3, 1);
        Assert.True(Stage2TestSupport.MaxAbsDifference(atLowerBound, cat([condAtZero, condAtZero], 0)) < 1e-6);
        Assert.True(Stage2TestSupport.MaxAbsDifference(atUpperBound.slice(0, 0, 3, 1), atUpperBound.slice(0, 3, 6, 1)) == 0);
    }

    [Fact]
    public void AutoguidanceRunsTheConditionalHalfAndReturnsADoubledBatch()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var model = LoadFixtureModel();
        using var guide = new LightningDiT(Tiny with { Depth = 1 }, new Generator(1, device("cpu")));
        Stage2TestSupport.DenseInit(guide, 3);
        guide.eval();
        var x = randn(4, 8, 8, 8);
        var t = tensor(new float[] { 0.1f, 0.5f, 0.9f, 0.9f });
        var y = tensor(new long[] { 1, 2, 10, 10 });
        var output = model.ForwardWithAutoguidance(x, t, y, 3.0, (a, b, c) => guide.forward(a, b, c), (0.2, 0.8));
        Assert.Equal(x.shape, output.shape);
        var (hx, ht, hy) = (x.slice(0, 0, 2, 1), t.slice(0, 0, 2, 1), y.slice(0, 0, 2, 1));
        var main = model.forward(hx, ht, hy);
        var guidance = guide.forward(hx, ht, hy);
        Assert.True(Stage2TestSupport.MaxAbsDifference(output[0], main[0]) < 1e-6, "t = 0.1 is outside the interval");
        Assert.True(Stage2TestSupport.MaxAbsDifference(output[1], guidance[1] + 3.0 * (main[1] - guidance[1])) < 1e-5);
        Assert.True(output.slice(0, 0, 2, 1).equal(output.slice(0, 2, 4, 1)).all().item<bool>());
    }

    [Fact]
    public void WithoutShiftAndLearnSigmaWorkAndTrainEveryParameter()
    {
        using var scope = NewDisposeScope();
        using var model = new LightningDiT(Tiny with { WoShift = true, LearnSigma = true, UseRope = false }, new Generator(2, device("cpu")));
        var state = model.state_dict();
        Assert.Equal(new long[] { 4 * 64, 64 }, state["blocks.0.adaLN_modulation.1.weight"].shape);
        Assert.Equal(new long[] { 2 * 2 * 16, 64 }, state["final_layer.linear.weight"].shape);
        Assert.DoesNotContain(state.Keys, k => k.Contains("rope", StringComparison.Ordinal));
        Stage2TestSupport.DenseInit(model, 4);
        model.train();
        var x = randn(2, 8, 8, 8);
        var velocity = model.forward(x, tensor(new float[] { 0.2f, 0.7f }), tensor(new long[] { 3, 10 }), new Generator(9, device("cpu")));
        Assert.Equal(x.shape, velocity.shape);
        velocity.pow(2).mean().backward();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (!parameter.requires_grad) continue;
            // learn_sigma: the discarded sigma outputs get no gradient, every other parameter does.
            Assert.True(parameter.grad is not null && parameter.grad.abs().sum().item<float>() > 0, $"no gradient reaches {name}");
        }
    }

    [Fact]
    public void ReferenceInitialisationUsesXavierLinearsAndZeroOutputs()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var model = new LightningDiT(Tiny, new Generator(8, device("cpu")));
        var state = model.state_dict();
        var bound = Math.Sqrt(6.0 / (64 + 192));
        Assert.InRange(state["blocks.0.attn.qkv.weight"].abs().max().item<float>(), 0.9 * bound, bound);
        Assert.Equal(0f, state["blocks.0.attn.qkv.bias"].abs().max().item<float>());
        Assert.Equal(0f, state["blocks.1.adaLN_modulation.1.weight"].abs().max().item<float>());
        Assert.Equal(0f, state["final_layer.linear.weight"].abs().max().item<float>());
        Assert.InRange(state["t_embedder.mlp.0.weight"].std().item<float>(), 0.015f, 0.025f);
        model.eval();
        Assert.Equal(0f, model.forward(randn(1, 8, 8, 8), tensor(new float[] { 0.5f }), tensor(new long[] { 1 })).abs().max().item<float>());
    }

    [Fact]
    public void DiTwDDTHeadCfgRejectsAnEmptyInterval()
    {
        using var scope = NewDisposeScope();
        using var model = new DiTwDDTHead(new DiTwDDTHeadOptions
        {
            InputSize = 2, InChannels = 4, HiddenSize = new(16, 16), Depth = new(1, 1), NumHeads = EncoderDecoderPair.Both(1), NumClasses = 3,
        });
        var error = Assert.Throws<ArgumentException>(() => model.ForwardWithCfg(zeros(2, 4, 2, 2), zeros(2), zeros(2, int64), 2.0, (0.5, 0.5)));
        Assert.Contains("t_min < t_max", error.Message);
    }
}
