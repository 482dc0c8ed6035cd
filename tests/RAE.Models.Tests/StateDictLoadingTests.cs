using RAE.Models.IO;
using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class StateDictLoadingTests
{
    private static readonly DiTwDDTHeadOptions TinyOptions = new()
    {
        InputSize = 4, InChannels = 8, HiddenSize = new(64, 96), Depth = new(2, 1), NumHeads = new(4, 4), NumClasses = 10,
    };

    [Fact]
    public void LoadsEveryParameterAndPersistentBuffer()
    {
        using var scope = NewDisposeScope();
        var weights = Stage2TestSupport.LoadCase("ddt_tiny", "weights.safetensors");
        using var model = new DiTwDDTHead(TinyOptions);
        StateDictLoading.LoadStrict(model, weights, "ddt_tiny/weights.safetensors");
        var state = model.state_dict();
        Assert.Equal(weights.Keys.OrderBy(k => k), state.Keys.OrderBy(k => k));
        foreach (var (key, tensor) in weights)
            Assert.True(state[key].equal(tensor).all().item<bool>(), $"{key} was not copied");
    }

    [Fact]
    public void ListsMissingUnexpectedAndMisShapedKeysTogether()
    {
        using var scope = NewDisposeScope();
        var weights = Stage2TestSupport.LoadCase("ddt_tiny", "weights.safetensors");
        using var model = new DiTwDDTHead(TinyOptions);
        using var before = model.state_dict()["blocks.0.attn.qkv.weight"].clone();

        weights.Remove("s_projector.bias");
        weights["blocks.1.attn.extra.weight"] = weights["blocks.1.attn.proj.weight"];
        weights.Remove("blocks.1.attn.proj.weight");
        weights["final_layer.linear.weight"] = zeros(8, 95);

        var error = Assert.Throws<InvalidDataException>(() => StateDictLoading.LoadStrict(model, weights, "broken.safetensors"));
        Assert.Contains("broken.safetensors", error.Message);
        Assert.Contains("missing keys (2): blocks.1.attn.proj.weight, s_projector.bias", error.Message);
        Assert.Contains("unexpected keys (1): blocks.1.attn.extra.weight", error.Message);
        Assert.Contains("final_layer.linear.weight: checkpoint [8, 95], model [8, 96]", error.Message);
        Assert.True(model.state_dict()["blocks.0.attn.qkv.weight"].equal(before).all().item<bool>(), "a failed load must copy nothing");
    }

    [Fact]
    public void RejectsAModelBuiltWithoutRopeForARopeCheckpoint()
    {
        using var scope = NewDisposeScope();
        var weights = Stage2TestSupport.LoadCase("ddt_tiny", "weights.safetensors");
        using var model = new DiTwDDTHead(TinyOptions with { UseRope = false });
        var error = Assert.Throws<InvalidDataException>(() => StateDictLoading.LoadStrict(model, weights, "ddt_tiny"));
        Assert.Contains("unexpected keys (4): dec_feat_rope.freqs_cos, dec_feat_rope.freqs_sin, enc_feat_rope.freqs_cos, enc_feat_rope.freqs_sin", error.Message);
    }
}
