using RAE.Models.Nn;
using RAE.Models.IO;
using RAE.Models.Stage1;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1;

public sealed class GeneralDecoderTests
{
    private static DecoderConfig Tiny => new(HiddenSize: 16, DecoderHiddenSize: 32, DecoderNumHiddenLayers: 2,
        DecoderNumAttentionHeads: 4, DecoderIntermediateSize: 64, PatchSize: 4, ImageSize: 16);

    [Fact]
    public void SinCosTableEqualsTheReferenceDecoderTable()
    {
        var weights = SafeTensors.Load(Path.Combine(Fixtures.Case("decoder_tiny"), "weights.safetensors"));
        try
        {
            using var ours = SinCosPositionEmbedding.Create2D(32, 4, withClsRow: true);
            var reference = weights["decoder_pos_embed"][0];
            Assert.True((ours - reference).abs().max().item<float>() < 1e-6);
            Assert.Equal(0f, ours[0].abs().sum().item<float>());
        }
        finally
        {
            foreach (var tensor in weights.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void StateDictHasTheReferenceKeys()
    {
        using var decoder = new GeneralDecoder(Tiny);
        var expected = SafeTensors.Load(Path.Combine(Fixtures.Case("decoder_tiny"), "weights.safetensors"));
        try
        {
            var ours = decoder.state_dict();
            Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), ours.Keys.OrderBy(k => k, StringComparer.Ordinal));
            foreach (var (key, tensor) in expected) Assert.Equal(tensor.shape, ours[key].shape);
        }
        finally
        {
            foreach (var tensor in expected.Values) tensor.Dispose();
        }
    }

    [Theory]
    [InlineData("decoder_layers.1.attention.output.dense.bias", false)]
    [InlineData("decoder_pred.weight", true)]
    public void DecoderWeightsLoadStrictly(string key, bool misShape)
    {
        var weights = SafeTensors.Load(Path.Combine(Fixtures.Case("decoder_tiny"), "weights.safetensors"));
        var file = Path.Combine(HfTestCheckpoints.NewFolder(), "model.safetensors");
        try
        {
            using var decoder = new GeneralDecoder(Tiny);
            StrictWeightLoader.Load(decoder, Path.Combine(Fixtures.Case("decoder_tiny"), "weights.safetensors"));
            Assert.True(decoder.state_dict()["decoder_pred.bias"].eq(weights["decoder_pred.bias"]).all().item<bool>());

            var edited = weights.Where(pair => pair.Key != key).ToDictionary(pair => pair.Key, pair => pair.Value);
            if (misShape) edited[key] = weights[key][..^1];
            SafeTensors.Save(file, edited);
            var exception = Assert.Throws<InvalidDataException>(() => StrictWeightLoader.Load(decoder, file));
            Assert.Contains($"'{key}'", exception.Message);
            Assert.Contains(file, exception.Message);
        }
        finally
        {
            foreach (var tensor in weights.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void SeededInitialisationIsReproducibleAndPyTorchDefault()
    {
        using var g1 = new Generator(5);
        using var g2 = new Generator(5);
        using var g3 = new Generator(6);
        using var a = new GeneralDecoder(Tiny, generator: g1);
        using var b = new GeneralDecoder(Tiny, generator: g2);
        using var c = new GeneralDecoder(Tiny, generator: g3);
        var sa = a.state_dict();
        var sb = b.state_dict();
        var sc = c.state_dict();
        foreach (var key in sa.Keys) Assert.True(sa[key].eq(sb[key]).all().item<bool>(), $"{key} differs for the same seed");
        Assert.False(sa["decoder_embed.weight"].allclose(sc["decoder_embed.weight"]));

        var bound = 1 / Math.Sqrt(16);
        Assert.True(sa["decoder_embed.weight"].abs().max().item<float>() <= bound);
        Assert.True(sa["decoder_embed.weight"].abs().max().item<float>() > bound * 0.8);
        Assert.Equal(0f, sa["trainable_cls_token"].abs().sum().item<float>());
        Assert.Equal(1f, sa["decoder_norm.weight"].min().item<float>());
        using var table = SinCosPositionEmbedding.Create2D(32, 4, withClsRow: true);
        Assert.True(sa["decoder_pos_embed"][0].eq(table).all().item<bool>());
    }

    [Fact]
    public void UnpatchifyPlacesEachTokenValueAtItsPixel()
    {
        using var decoder = new GeneralDecoder(Tiny);
        using var scope = NewDisposeScope();
        // token n = i·4 + j holds values ordered (r, q, c): value = 1000n + 100c + 10r + q.
        var logits = zeros(1, 16, 48);
        for (var n = 0; n < 16; n++)
        for (var r = 0; r < 4; r++)
        for (var q = 0; q < 4; q++)
        for (var ch = 0; ch < 3; ch++)
            logits[0, n, (r * 4 + q) * 3 + ch] = 1000 * n + 100 * ch + 10 * r + q;
        var image = decoder.unpatchify(logits);
        Assert.Equal(new long[] { 1, 3, 16, 16 }, image.shape);
        // pixel [c, 4i + r, 4j + q]
        Assert.Equal(1000 * (2 * 4 + 3) + 100 * 1 + 10 * 2 + 1, image[0, 1, 4 * 2 + 2, 4 * 3 + 1].item<float>());
        Assert.Equal(1000 * 5 + 200 + 30 + 0, image[0, 2, 4 * 1 + 3, 4 * 1 + 0].item<float>());
    }

    [Fact]
    public void ForwardGivesOneLogitRowPerTokenAndResizesOtherLatentGrids()
    {
        using var generator = new Generator(2);
        using var decoder = new GeneralDecoder(Tiny, generator: generator);
        using var scope = NewDisposeScope();
        var logits = decoder.forward(randn([2, 16, 16], generator: generator));
        Assert.Equal(new long[] { 2, 16, 48 }, logits.shape);
        var resized = decoder.forward(randn([2, 9, 16], generator: generator));
        Assert.Equal(new long[] { 2, 16, 48 }, resized.shape);
        Assert.Throws<ArgumentException>(() => decoder.forward(randn([2, 16, 8])));
    }

    [Fact]
    public void ConfigJsonGetsTheRaeOverrides()
    {
        var folder = HfTestCheckpoints.NewFolder();
        var path = Path.Combine(folder, "config.json");
        File.WriteAllText(path, """
            {"architectures":["ViTMAEForPreTraining"],"hidden_size":768,"decoder_hidden_size":1152,"decoder_num_hidden_layers":28,
             "decoder_num_attention_heads":16,"decoder_intermediate_size":4096,"hidden_act":"gelu","layer_norm_eps":1e-12,
             "patch_size":"SHOULD BE RELOADED","image_size":224,"qkv_bias":true}
            """.Replace("\"SHOULD BE RELOADED\"", "14"));
        var config = DecoderConfig.FromFile(path).WithRaeOverrides(latentDim: 384, decoderPatchSize: 16, basePatches: 1024);
        Assert.Equal(DecoderConfig.ViTXL with { HiddenSize = 384, ImageSize = 512 }, config);
        // The reference configs name the folder (decoder_config_path: configs/decoder/ViTXL), not the file.
        Assert.Equal(config, DecoderConfig.FromFile(folder).WithRaeOverrides(latentDim: 384, decoderPatchSize: 16, basePatches: 1024));
        Assert.Equal(1024, config.NumPatches);
        Assert.Equal(768, config.PixelsPerToken);
    }

    [Fact]
    public void PresetsMatchTheSpecTable()
    {
        Assert.Equal((768, 12, 12, 3072), Shape(DecoderConfig.Preset("ViTB")));
        Assert.Equal((1024, 24, 16, 4096), Shape(DecoderConfig.Preset("vitl")));
        Assert.Equal((1152, 28, 16, 4096), Shape(DecoderConfig.Preset("ViTXL")));
        Assert.Equal(1e-12, DecoderConfig.ViTXL.LayerNormEps);
        Assert.Equal(86_400_000, ParameterCount(DecoderConfig.ViTB), 100_000d);
        Assert.Throws<ArgumentException>(() => DecoderConfig.Preset("ViTH"));
    }

    private static (int, int, int, int) Shape(DecoderConfig c) =>
        (c.DecoderHiddenSize, c.DecoderNumHiddenLayers, c.DecoderNumAttentionHeads, c.DecoderIntermediateSize);

    /// <summary>Parameter count from the layer formula (building ViT-B here would allocate 350 MB).</summary>
    private static double ParameterCount(DecoderConfig c)
    {
        long d = c.DecoderHiddenSize, m = c.DecoderIntermediateSize;
        var perLayer = 4 * (d * d + d) + (d * m + m) + (m * d + d) + 4 * d;
        return c.HiddenSize * d + d + d + (c.NumPatches + 1) * d + c.DecoderNumHiddenLayers * perLayer + 2 * d + d * c.PixelsPerToken + c.PixelsPerToken;
    }
}
