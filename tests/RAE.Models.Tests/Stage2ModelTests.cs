using RAE.Models.IO;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using TorchSharp;
using static TorchSharp.torch;
using EncoderDecoderPair = RAE.Configuration.EncoderDecoderPair;

namespace RAE.Models.Tests;

public sealed class Stage2ModelTests
{
    private static readonly DiTwDDTHeadOptions Tiny = new()
    {
        InputSize = 4, InChannels = 8, HiddenSize = new(64, 96), Depth = new(2, 1), NumHeads = new(4, 4), NumClasses = 10,
    };

    [Fact]
    public void ConstructedFixedTablesEqualTheReferenceConstruction()
    {
        using var scope = NewDisposeScope();
        var weights = Stage2TestSupport.LoadCase("ddt_tiny", "weights.safetensors");
        using var model = new DiTwDDTHead(Tiny);
        var state = model.state_dict();
        foreach (var key in new[] { "pos_embed", "enc_feat_rope.freqs_cos", "enc_feat_rope.freqs_sin", "dec_feat_rope.freqs_cos", "dec_feat_rope.freqs_sin" })
            Assert.True(Stage2TestSupport.MaxAbsDifference(state[key], weights[key]) < 1e-6, $"{key} differs from the reference construction");

        var lightningWeights = Stage2TestSupport.LoadCase("lightningdit_tiny", "weights.safetensors");
        using var lightning = new LightningDiT(new LightningDiTOptions
        {
            InputSize = 8, PatchSize = 2, InChannels = 8, HiddenSize = 64, Depth = 2, NumHeads = 4, NumClasses = 10, UseQkNorm = true,
        });
        var lightningState = lightning.state_dict();
        foreach (var key in new[] { "pos_embed", "feat_rope.freqs_cos", "feat_rope.freqs_sin" })
            Assert.True(Stage2TestSupport.MaxAbsDifference(lightningState[key], lightningWeights[key]) < 1e-6, $"{key} differs from the reference construction");
    }

    [Fact]
    public void PrecomputedEncoderOutputMatchesTheTracedEncoderAndGivesTheSameVelocity()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var io = Stage2TestSupport.LoadCase("ddt_tiny", "io.safetensors");
        using var model = new DiTwDDTHead(Tiny);
        StateDictLoading.LoadStrict(model, Stage2TestSupport.LoadCase("ddt_tiny", "weights.safetensors"), "ddt_tiny");
        model.eval();
        var s = model.Encode(io["x"], io["t"], io["y"]);
        Assert.True(Stage2TestSupport.MaxAbsDifference(s, io["trace.s_projector.input"]) < 1e-5);
        var direct = model.forward(io["x"], io["t"], io["y"]);
        var withS = model.forward(io["x"], io["t"], io["y"], s);
        Assert.Equal(0.0, Stage2TestSupport.MaxAbsDifference(direct, withS));
    }

    public static TheoryData<string> ReferenceCrashFixes => ["wo_shift", "no_rope", "patch_2", "patch_pair_2_1", "layernorm_gelu_qknorm", "no_pos_embed"];

    /// <summary>§13 item 6: configurations the reference cannot run build, give finite outputs and train every parameter.</summary>
    [Theory]
    [MemberData(nameof(ReferenceCrashFixes))]
    public void ConfigurationsTheReferenceCrashesOnWorkAndTrainEveryParameter(string variant)
    {
        using var scope = NewDisposeScope();
        var options = variant switch
        {
            "wo_shift" => Tiny with { WoShift = true },
            "no_rope" => Tiny with { UseRope = false },
            "patch_2" => Tiny with { InputSize = 8, PatchSize = EncoderDecoderPair.Both(2) },
            "patch_pair_2_1" => Tiny with { PatchSize = new(2, 1) },
            "layernorm_gelu_qknorm" => Tiny with { UseRmsNorm = false, UseSwiGlu = false, UseQkNorm = true },
            "no_pos_embed" => Tiny with { UsePosEmbed = false },
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        using var model = new DiTwDDTHead(options, new Generator(3, device("cpu")));
        var state = model.state_dict();
        switch (variant)
        {
            case "wo_shift":
                Assert.Equal(new long[] { 4 * 64, 64 }, state["blocks.0.adaLN_modulation.1.weight"].shape);
                Assert.Equal(new long[] { 2 * 96, 96 }, state["final_layer.adaLN_modulation.1.weight"].shape);
                break;
            case "no_rope":
                Assert.DoesNotContain(state.Keys, k => k.Contains("rope", StringComparison.Ordinal));
                break;
            case "patch_2":
                Assert.Equal(new long[] { 96, 8, 2, 2 }, state["x_embedder.proj.weight"].shape);
                Assert.Equal(new long[] { 64, 8, 2, 2 }, state["s_embedder.proj.weight"].shape);
                Assert.Equal(new long[] { 4 * 8, 96 }, state["final_layer.linear.weight"].shape);
                Assert.Equal(new long[] { 1, 16, 64 }, state["pos_embed"].shape);
                break;
            case "patch_pair_2_1":
                Assert.Equal(new long[] { 1, 4, 64 }, state["pos_embed"].shape);
                Assert.Equal(new long[] { 4, 16 }, state["enc_feat_rope.freqs_cos"].shape);
                Assert.Equal(new long[] { 16, 24 }, state["dec_feat_rope.freqs_cos"].shape);
                break;
            case "layernorm_gelu_qknorm":
                Assert.Contains("blocks.0.mlp.fc1.weight", state.Keys);
                Assert.Contains("blocks.0.attn.q_norm.bias", state.Keys);
                Assert.DoesNotContain("blocks.0.norm1.weight", state.Keys);
                break;
            case "no_pos_embed":
                Assert.DoesNotContain("pos_embed", state.Keys);
                break;
        }

        Stage2TestSupport.DenseInit(model, seed: 11);
        model.train();
        var side = options.InputSize;
        var x = randn(3, 8, side, side);
        var t = tensor(new float[] { 0.1f, 0.5f, 0.9f });
        var y = tensor(new long[] { 1, 4, 10 });
        var velocity = model.forward(x, t, y, labelDropoutGenerator: new Generator(5, device("cpu")));
        Assert.Equal(x.shape, velocity.shape);
        Assert.True(velocity.isfinite().all().item<bool>());
        (velocity - randn_like(velocity)).pow(2).mean().backward();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (!parameter.requires_grad) continue;
            Assert.True(parameter.grad is not null && parameter.grad.abs().sum().item<float>() > 0, $"{variant}: no gradient reaches {name}");
        }
    }

    [Fact]
    public void WithoutShiftModulatesWithScaleAndGateOnly()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var block = new LightningDDTBlock(16, 2, 4.0, useQkNorm: false, useSwiGlu: true, useRmsNorm: true, withoutShift: true);
        Stage2TestSupport.DenseInit(block, seed: 2);
        var x = randn(2, 4, 16);
        var condition = randn(2, 16);
        var output = block.forward(x, condition, null);
        // Zeroing the gate rows (chunks 1 and 3 of 4) must turn the block into the identity.
        block.ModulationLinear.weight!.slice(0, 16, 32, 1).zero_();
        block.ModulationLinear.bias!.slice(0, 16, 32, 1).zero_();
        block.ModulationLinear.weight!.slice(0, 48, 64, 1).zero_();
        block.ModulationLinear.bias!.slice(0, 48, 64, 1).zero_();
        Assert.True(Stage2TestSupport.MaxAbsDifference(block.forward(x, condition, null), x) < 1e-6);
        Assert.True(Stage2TestSupport.MaxAbsDifference(output, x) > 1e-2);
    }

    [Fact]
    public void UnpatchifyPlacesPatchValuesRowColumnChannel()
    {
        using var scope = NewDisposeScope();
        const long p = 2, c = 3, side = 2;
        var tokens = arange(side * side * p * p * c, dtype: float32).reshape(1, side * side, p * p * c);
        var image = DiTwDDTHead.Unpatchify(tokens, p, c);
        Assert.Equal(new long[] { 1, c, side * p, side * p }, image.shape);
        for (long i = 0; i < side; i++)
        for (long j = 0; j < side; j++)
        for (long r = 0; r < p; r++)
        for (long q = 0; q < p; q++)
        for (long ch = 0; ch < c; ch++)
            Assert.Equal(tokens[0, i * side + j, (r * p + q) * c + ch].item<float>(), image[0, ch, i * p + r, j * p + q].item<float>());
    }

    [Fact]
    public void ReferenceInitialisationIsSeededAndStartsFromZeroVelocity()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var first = new DiTwDDTHead(Tiny, new Generator(42, device("cpu")));
        using var second = new DiTwDDTHead(Tiny, new Generator(42, device("cpu")));
        using var other = new DiTwDDTHead(Tiny, new Generator(43, device("cpu")));
        var a = first.state_dict();
        var b = second.state_dict();
        var o = other.state_dict();
        foreach (var key in a.Keys) Assert.True(a[key].equal(b[key]).all().item<bool>(), $"{key} is not reproducible from the seed");
        Assert.False(a["t_embedder.W"].equal(o["t_embedder.W"]).all().item<bool>());
        Assert.False(a["blocks.0.attn.qkv.weight"].equal(o["blocks.0.attn.qkv.weight"]).all().item<bool>());

        foreach (var key in a.Keys.Where(k => k.Contains("adaLN_modulation", StringComparison.Ordinal) || k.StartsWith("final_layer.linear", StringComparison.Ordinal)))
            Assert.Equal(0f, a[key].abs().max().item<float>());
        foreach (var key in a.Keys.Where(k => k.EndsWith("norm1.weight", StringComparison.Ordinal) || k.EndsWith("norm_final.weight", StringComparison.Ordinal)))
            Assert.Equal(1f, a[key].min().item<float>());
        Assert.Equal(0f, a["s_embedder.proj.bias"].abs().max().item<float>());
        Assert.InRange(a["y_embedder.embedding_table.weight"].std().item<float>(), 0.015f, 0.025f);
        Assert.InRange(a["t_embedder.W"].std().item<float>(), 0.8f, 1.2f);
        var qkvBound = 1 / Math.Sqrt(64);
        Assert.InRange(a["blocks.0.attn.qkv.weight"].abs().max().item<float>(), 0.9 * qkvBound, qkvBound);
        using var sinCos = SinCosPositionEmbedding.Create2D(64, 4);
        Assert.True(a["pos_embed"][0].equal(sinCos).all().item<bool>());
        var names = first.named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        Assert.False(names["pos_embed"]);
        Assert.False(names["t_embedder.W"]);
        Assert.True(names["blocks.0.attn.qkv.weight"]);

        first.eval();
        var velocity = first.forward(randn(2, 8, 4, 4), tensor(new float[] { 0.3f, 0.7f }), tensor(new long[] { 2, 10 }));
        Assert.Equal(0f, velocity.abs().max().item<float>());
    }

    [Fact]
    public void SwiGluHiddenWidthsFollowTheReferenceFormula()
    {
        Assert.Equal(1024, SwiGLUFFN.BlockHiddenSize(384, 4));
        Assert.Equal(2048, SwiGLUFFN.BlockHiddenSize(768, 4));
        Assert.Equal(2730, SwiGLUFFN.BlockHiddenSize(1024, 4));
        Assert.Equal(3072, SwiGLUFFN.BlockHiddenSize(1152, 4));
        Assert.Equal(5461, SwiGLUFFN.BlockHiddenSize(2048, 4));
    }
}
