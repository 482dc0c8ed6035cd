using RAE.Models.Nn;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Encoders;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1;

public sealed class HfEncoderTests
{
    private const int Patch = 4;

    private static string DinoConfig(int layers) =>
        $$"""{"model_type":"dinov2_with_registers","hidden_size":32,"num_hidden_layers":{{layers}},"num_attention_heads":2,"mlp_ratio":2,"patch_size":4,"image_size":32,"layer_norm_eps":1e-6,"num_register_tokens":3}""";

    private static string SiglipConfig(int layers) =>
        $$$"""{"model_type":"siglip","text_config":{"hidden_size":32},"vision_config":{"hidden_size":32,"num_hidden_layers":{{{layers}}},"num_attention_heads":2,"intermediate_size":64,"patch_size":4,"image_size":32}}""";

    private static string MaeConfig(int layers) =>
        $$"""{"model_type":"vit_mae","hidden_size":32,"num_hidden_layers":{{layers}},"num_attention_heads":2,"intermediate_size":64,"patch_size":4,"image_size":32,"mask_ratio":0.75}""";

    public static TheoryData<string> Families => new() { "dinov2", "siglip", "mae" };

    private static (IRepresentationEncoder Encoder, Dictionary<string, Tensor> Weights, string Folder) Build(string family, int layers, int seed = 1,
        Action<Dictionary<string, long[]>>? editKeys = null)
    {
        var folder = HfTestCheckpoints.NewFolder();
        var (config, keys) = family switch
        {
            "dinov2" => (DinoConfig(layers), HfTestCheckpoints.Dinov2Keys(layers, Patch, 8, 3)),
            "siglip" => (SiglipConfig(layers), HfTestCheckpoints.SiglipKeys(layers, Patch, 8)),
            _ => (MaeConfig(layers), HfTestCheckpoints.MaeKeys(layers, Patch, 8)),
        };
        editKeys?.Invoke(keys);
        HfTestCheckpoints.WriteConfig(folder, config);
        var weights = HfTestCheckpoints.WriteWeights(folder, keys, seed);
        IRepresentationEncoder encoder = family switch
        {
            "dinov2" => Dinov2WithRegistersEncoder.FromPretrained(folder),
            "siglip" => Siglip2VisionEncoder.FromPretrained(folder),
            _ => MaeEncoder.FromPretrained(folder),
        };
        return (encoder, weights, folder);
    }

    private static Tensor Images(int size, int seed)
    {
        using var generator = new Generator((ulong)seed);
        return rand([2, 3, size, size], generator: generator);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void LoadedEncoderGivesOneStandardisedTokenPerPatch(string family)
    {
        var (encoder, weights, _) = Build(family, layers: 2);
        using var scope = NewDisposeScope();
        var tokens = encoder.Encode(Images(32, 5));

        Assert.Equal(new long[] { 2, 64, 32 }, tokens.shape);
        Assert.Equal(32, encoder.HiddenSize);
        Assert.Equal(Patch, encoder.PatchSize);
        // The final norm has no affine although the checkpoint holds a random one: every token is standardised.
        var mean = tokens.mean([2]);
        var variance = tokens.var(2, unbiased: false);
        Assert.True(mean.abs().max().item<float>() < 1e-5, $"token means up to {mean.abs().max().item<float>()}");
        Assert.True((variance - 1).abs().max().item<float>() < 1e-3, $"token variances off by {(variance - 1).abs().max().item<float>()}");
        HfTestCheckpoints.Dispose(weights);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void WithoutLayersOutputIsTheNormalisedPatchEmbeddingPlusPosition(string family)
    {
        var (encoder, weights, _) = Build(family, layers: 0);
        using var scope = NewDisposeScope();
        var images = Images(32, 6);
        var prefix = family switch { "siglip" => "vision_model.", "mae" => "vit.", _ => "" };
        var (convWeight, convBias, positions) = family == "siglip"
            ? (weights[prefix + "embeddings.patch_embedding.weight"], weights[prefix + "embeddings.patch_embedding.bias"],
                weights[prefix + "embeddings.position_embedding.weight"])
            : (weights[prefix + "embeddings.patch_embeddings.projection.weight"], weights[prefix + "embeddings.patch_embeddings.projection.bias"],
                weights[prefix + "embeddings.position_embeddings"][0, 1..]);
        // Patch (r, c) → token r·8 + c, its values ordered (channel, row-in-patch, column-in-patch) like the conv kernel.
        var patches = images.reshape(2, 3, 8, Patch, 8, Patch).permute(0, 2, 4, 1, 3, 5).reshape(2, 64, 3 * Patch * Patch);
        var embedded = patches.matmul(convWeight.reshape(32, -1).t()) + convBias + positions;
        var eps = family == "mae" ? 1e-12 : 1e-6;
        var expected = (embedded - embedded.mean([2], keepdim: true)) / (embedded.var(2, unbiased: false, keepdim: true) + eps).sqrt();

        var tokens = encoder.Encode(images);

        Assert.Equal(expected.shape, tokens.shape);
        var error = (tokens - expected).abs().max().item<float>();
        Assert.True(error < 1e-4, $"{family}: max error {error} (CLS/register tokens must be dropped, patches in row-major order)");
        HfTestCheckpoints.Dispose(weights);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void DeterministicInputsGiveDeterministicOutputs(string family)
    {
        var (first, weights, folder) = Build(family, layers: 2, seed: 3);
        IRepresentationEncoder second = family switch
        {
            "dinov2" => Dinov2WithRegistersEncoder.FromPretrained(folder),
            "siglip" => Siglip2VisionEncoder.FromPretrained(folder),
            _ => MaeEncoder.FromPretrained(folder),
        };
        using var scope = NewDisposeScope();
        var images = Images(32, 9);
        var a = first.Encode(images);
        var b = first.Encode(images);
        var c = second.Encode(images);
        Assert.True(a.eq(b).all().item<bool>());
        Assert.True(a.eq(c).all().item<bool>());
        var other = first.Encode(Images(32, 10));
        Assert.False(a.allclose(other), "different images must give different tokens");
        HfTestCheckpoints.Dispose(weights);
    }

    [Theory]
    [InlineData("dinov2", "encoder.layer.1.layer_scale2.lambda1")]
    [InlineData("siglip", "vision_model.encoder.layers.0.self_attn.k_proj.bias")]
    [InlineData("mae", "vit.encoder.layer.1.layernorm_after.weight")]
    public void MissingKeyIsReportedWithKeyAndFile(string family, string key)
    {
        var exception = Assert.Throws<InvalidDataException>(() => Build(family, layers: 2, editKeys: keys => keys.Remove(key)));
        Assert.Contains($"'{key}'", exception.Message);
        Assert.Contains("model.safetensors", exception.Message);
        Assert.Contains("missing", exception.Message);
    }

    [Theory]
    [InlineData("dinov2", "embeddings.register_tokens", new long[] { 1, 4, 32 })]
    [InlineData("siglip", "vision_model.encoder.layers.1.mlp.fc1.weight", new long[] { 64, 31 })]
    [InlineData("mae", "vit.embeddings.cls_token", new long[] { 1, 2, 32 })]
    public void MisShapedKeyIsReportedWithKeyFileAndShapes(string family, string key, long[] shape)
    {
        var exception = Assert.Throws<InvalidDataException>(() => Build(family, layers: 2, editKeys: keys => keys[key] = shape));
        Assert.Contains($"'{key}'", exception.Message);
        Assert.Contains("model.safetensors", exception.Message);
        Assert.Contains($"[{string.Join(",", shape)}]", exception.Message);
    }

    [Fact]
    public void UnknownKeyUnderThePrefixIsRejected()
    {
        var exception = Assert.Throws<InvalidDataException>(() =>
            Build("dinov2", layers: 1, editKeys: keys => keys["encoder.layer.0.extra.weight"] = [3]));
        Assert.Contains("'encoder.layer.0.extra.weight'", exception.Message);
    }

    [Fact]
    public void Dinov2AtAnotherGridResizesThePositionTableAndKeepsOnlyPatches()
    {
        var (encoder, weights, _) = Build("dinov2", layers: 1);
        using var scope = NewDisposeScope();
        var tokens = encoder.Encode(Images(28, 4));
        Assert.Equal(new long[] { 2, 49, 32 }, tokens.shape);
        Assert.True(tokens.isfinite().all().item<bool>());
        HfTestCheckpoints.Dispose(weights);
    }

    [Fact]
    public void Dinov2RegistersTakePartInAttentionButAreNotReturned()
    {
        var (encoder, weights, folder) = Build("dinov2", layers: 1);
        using var scope = NewDisposeScope();
        var images = Images(32, 8);
        var before = encoder.Encode(images);
        weights["embeddings.register_tokens"].mul_(-2.0f); // a constant shift would vanish in norm1
        RAE.Models.IO.SafeTensors.Save(Path.Combine(folder, "model.safetensors"), weights);
        var after = Stage1Encoders.FromPretrained("Dinov2withNorm", folder).Encode(images);
        Assert.Equal(before.shape, after.shape);
        Assert.False(before.allclose(after, 1e-4, 1e-4), "register tokens must influence the patch tokens through attention");
        HfTestCheckpoints.Dispose(weights);
    }

    [Fact]
    public void UnknownEncoderClassIsRejected() =>
        Assert.Contains("'VAEwNorm'", Assert.Throws<NotSupportedException>(() => Stage1Encoders.FromPretrained("VAEwNorm", "/nowhere")).Message);

    [Fact]
    public void MaeWithoutStoredPositionTableUsesTheSinCosTable()
    {
        var (encoder, weights, _) = Build("mae", layers: 0, editKeys: keys => keys.Remove("vit.embeddings.position_embeddings"));
        using var scope = NewDisposeScope();
        var images = Images(32, 2);
        var tokens = encoder.Encode(images);
        var convWeight = weights["vit.embeddings.patch_embeddings.projection.weight"];
        var patches = images.reshape(2, 3, 8, Patch, 8, Patch).permute(0, 2, 4, 1, 3, 5).reshape(2, 64, 3 * Patch * Patch);
        var embedded = patches.matmul(convWeight.reshape(32, -1).t()) + weights["vit.embeddings.patch_embeddings.projection.bias"]
            + SinCosPositionEmbedding.Create2D(32, 8, withClsRow: false);
        var expected = (embedded - embedded.mean([2], keepdim: true)) / (embedded.var(2, unbiased: false, keepdim: true) + 1e-12).sqrt();
        Assert.True((tokens - expected).abs().max().item<float>() < 1e-4);
        HfTestCheckpoints.Dispose(weights);
    }

    [Fact]
    public void ConfigDefaultsFollowTransformers()
    {
        var dino = Dinov2Config.FromJson(HfConfig.Parse("""{"patch_size":14,"image_size":518}"""));
        Assert.Equal((768, 12, 12, 3072, 4, 1e-6, 37), (dino.HiddenSize, dino.NumHiddenLayers, dino.NumAttentionHeads, dino.IntermediateSize, dino.NumRegisterTokens, dino.LayerNormEps, dino.PretrainGrid));
        var siglip = SiglipVisionConfig.FromJson(HfConfig.Parse("""{"vision_config":{"image_size":256}}"""));
        Assert.Equal(("gelu_pytorch_tanh", 16, 16), (siglip.HiddenAct, siglip.PatchSize, siglip.PretrainGrid));
        var mae = Stage1MaeConfig();
        Assert.Equal(1e-12, mae.LayerNormEps);
    }

    private static RAE.Models.Stage1.Encoders.MaeConfig Stage1MaeConfig() => RAE.Models.Stage1.Encoders.MaeConfig.FromJson(HfConfig.Parse("{}"));
}
