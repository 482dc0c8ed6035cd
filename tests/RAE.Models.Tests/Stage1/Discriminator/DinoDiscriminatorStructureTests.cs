using System.Text.Json;
using RAE.Models.Stage1.Discriminator;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1.Discriminator;

/// <summary>The full-size S_8 layout (checkpoint keys, head keys, parameter counts) and the checkpoint loader's rules.</summary>
public sealed class DinoDiscriminatorStructureTests
{
    internal static readonly DinoBackboneRecipe TinyRecipe = new("tiny", 3, [0, 2], 1e-6, 32, 3, 32, 2, 2.0);

    private static JsonElement S8Structure()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.Case("dino_disc"), "case.json")));
        return document.RootElement.GetProperty("s8_structure").Clone();
    }

    private static Dictionary<string, long[]> Shapes(JsonElement keys) =>
        keys.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(d => d.GetInt64()).ToArray());

    [Fact]
    public void S8BuildHasTheReleasedCheckpointKeysShapesAndParameterCounts()
    {
        var structure = S8Structure();
        using var discriminator = new DinoDiscriminator(new DinoVisionBackbone(DinoBackboneRecipe.S8), new DiscriminatorHeadOptions());

        var backboneShapes = discriminator.Backbone.state_dict()
            .Where(p => p.Key is not ("x_scale" or "x_shift")).ToDictionary(p => p.Key, p => p.Value.shape);
        var expectedBackbone = Shapes(structure.GetProperty("dino_checkpoint_keys"));
        Assert.Equal(expectedBackbone.Keys.Order(), backboneShapes.Keys.Order());
        foreach (var (key, shape) in expectedBackbone) Assert.Equal(shape, backboneShapes[key]);
        Assert.Equal(structure.GetProperty("backbone_params").GetInt64(), discriminator.Backbone.parameters().Sum(p => p.numel()));

        var headShapes = discriminator.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        var expectedHeads = Shapes(structure.GetProperty("heads_state_dict_keys"));
        Assert.Equal(expectedHeads.Keys.Order(), headShapes.Keys.Order());
        foreach (var (key, shape) in expectedHeads) Assert.Equal(shape, headShapes[key]);
        Assert.Equal(structure.GetProperty("trainable_params").GetInt64(), discriminator.TrainableParameters().Sum(p => p.numel()));
        Assert.All(discriminator.Backbone.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void LoaderZeroesOnlyTheKeyThirdOfEachQkvBias()
    {
        var stateDict = RandomCheckpoint(TinyRecipe);
        try
        {
            using var backbone = DinoVisionBackbone.FromStateDict(TinyRecipe, stateDict, "test checkpoint");
            var loaded = backbone.state_dict();
            var width = TinyRecipe.EmbedDim;
            for (var i = 0; i < TinyRecipe.Depth; i++)
            {
                var key = $"blocks.{i}.attn.qkv.bias";
                var original = stateDict[key];
                Assert.Equal(0f, loaded[key].narrow(0, width, width).abs().max().item<float>());
                Assert.True(original.narrow(0, width, width).abs().max().item<float>() > 0, "the test needs a non-zero key bias");
                Assert.True(loaded[key].narrow(0, 0, width).equal(original.narrow(0, 0, width)).all().item<bool>());
                Assert.True(loaded[key].narrow(0, 2 * width, width).equal(original.narrow(0, 2 * width, width)).all().item<bool>());
            }
            Assert.True(loaded["pos_embed"].equal(stateDict["pos_embed"]).all().item<bool>());
            Assert.NotEqual(0f, stateDict[$"blocks.0.attn.qkv.bias"].narrow(0, width, width).abs().sum().item<float>());
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void LoaderRejectsUnexpectedAndMissingKeysByName()
    {
        var stateDict = RandomCheckpoint(TinyRecipe);
        try
        {
            stateDict["head.weight"] = zeros(10, TinyRecipe.EmbedDim);
            var unexpected = Assert.Throws<InvalidDataException>(() => DinoVisionBackbone.FromStateDict(TinyRecipe, stateDict, "dino.pth"));
            Assert.Contains("'head.weight'", unexpected.Message);
            Assert.Contains("dino.pth", unexpected.Message);

            stateDict.Remove("head.weight", out var head);
            head!.Dispose();
            stateDict.Remove("blocks.1.mlp.fc2.bias", out var removed);
            removed!.Dispose();
            var missing = Assert.Throws<InvalidDataException>(() => DinoVisionBackbone.FromStateDict(TinyRecipe, stateDict, "dino.pth"));
            Assert.Contains("'blocks.1.mlp.fc2.bias'", missing.Message);
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void DiscriminatorStateDictHoldsTheHeadsOnly()
    {
        using var discriminator = TinyDiscriminator(seed: 3);
        Assert.All(discriminator.state_dict().Keys, key => Assert.StartsWith("heads.", key));
        Assert.Equal(TinyRecipe.HeadCount, discriminator.state_dict().Keys.Select(k => k.Split('.')[1]).Distinct().Count());
        Assert.Equal(3 * TinyRecipe.HeadCount, discriminator.SpectralConvs().Count);
        Assert.Contains(discriminator.SpectralConvs(), c => c.Name == "heads.1.1.fn.0");
    }

    [Fact]
    public void GeneratorGradientsReachTheImagesThroughTheFrozenBackbone()
    {
        using var discriminator = TinyDiscriminator(seed: 4);
        discriminator.SetTraining(false);
        using var images = rand(2, 3, 40, 40).mul_(2).sub_(1).requires_grad_();
        using var logits = discriminator.Classify(images);
        Assert.Equal(new long[] { 2, TinyRecipe.HeadCount * TinyRecipe.TokenCount }, logits.shape);
        using var loss = -logits.mean();
        loss.backward();
        Assert.NotNull(images.grad);
        Assert.True(images.grad!.abs().sum().item<float>() > 0);
        Assert.All(discriminator.Backbone.parameters(), p => Assert.Null(p.grad));
    }

    internal static DinoDiscriminator TinyDiscriminator(int seed)
    {
        var stateDict = RandomCheckpoint(TinyRecipe, seed);
        try
        {
            using var generator = new Generator((ulong)seed + 100);
            return new DinoDiscriminator(DinoVisionBackbone.FromStateDict(TinyRecipe, stateDict, "random"), new DiscriminatorHeadOptions(KernelSize: 3), generator);
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
    }

    /// <summary>A random checkpoint in the original DINO layout for <paramref name="recipe"/> (every key but x_scale/x_shift).</summary>
    internal static Dictionary<string, Tensor> RandomCheckpoint(DinoBackboneRecipe recipe, int seed = 1)
    {
        using var generator = new Generator((ulong)seed);
        using var template = new DinoVisionBackbone(recipe);
        return template.state_dict().Where(p => p.Key is not ("x_scale" or "x_shift"))
            .ToDictionary(p => p.Key, p => randn(p.Value.shape, generator: generator).mul_(0.2));
    }
}
