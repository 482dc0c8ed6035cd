using RAE.Models.Stage1;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1;

public sealed class RepresentationAutoencoderTests
{
    /// <summary>Test double: mean-pools each 4×4 patch and maps the 3 pooled channels to 6 with a fixed matrix.</summary>
    private sealed class PoolingEncoder : IRepresentationEncoder
    {
        private readonly Tensor _projection = tensor(new float[] { 1, 0, 0, 2, 0, 1, 0, 1, 0, -1, 1, 0, 0, 0, 1, 0, 3, 1 }, [3, 6]);

        public int PatchSize => 4;
        public int HiddenSize => 6;
        public IReadOnlyList<float> ImageMean { get; } = [0.485f, 0.456f, 0.406f];
        public IReadOnlyList<float> ImageStd { get; } = [0.229f, 0.224f, 0.225f];
        public Tensor? LastInput { get; private set; }

        public Tensor Encode(Tensor images)
        {
            LastInput?.Dispose();
            LastInput = images.clone().DetachFromDisposeScope();
            var pooled = nn.functional.avg_pool2d(images, 4);                 // [B,3,g,g]
            var tokens = pooled.flatten(2).transpose(1, 2);                    // [B,N,3]
            return tokens.matmul(_projection);
        }
    }

    private static readonly RaeOptions Options = new(EncoderInputSize: 16, DecoderPatchSize: 4, NoiseTau: 0.8);

    private static DecoderConfig DecoderFile => new(HiddenSize: 999, DecoderHiddenSize: 16, DecoderNumHiddenLayers: 1,
        DecoderNumAttentionHeads: 2, DecoderIntermediateSize: 32, PatchSize: 99, ImageSize: 990);

    private static Tensor Images(int size, int seed)
    {
        using var generator = new Generator((ulong)seed);
        return rand([2, 3, size, size], generator: generator);
    }

    private static (Tensor Mean, Tensor Var) Stats(int seed)
    {
        using var generator = new Generator((ulong)seed);
        return (randn([6, 4, 4], generator: generator), rand([6, 4, 4], generator: generator) + 0.5f);
    }

    private static RepresentationAutoencoder Build(PoolingEncoder encoder, LatentNormalization? normalization = null)
    {
        using var generator = new Generator(1);
        return new RepresentationAutoencoder(encoder, DecoderFile, Options, normalization, generator: generator);
    }

    [Fact]
    public void DecoderIsBuiltWithTheRaeOverrides()
    {
        using var rae = Build(new PoolingEncoder());
        Assert.Equal(6, rae.Decoder.Config.HiddenSize);
        Assert.Equal(4, rae.Decoder.Config.PatchSize);
        Assert.Equal(16, rae.Decoder.Config.ImageSize);
        Assert.Contains("decoder.decoder_embed.weight", rae.state_dict().Keys);
    }

    [Fact]
    public void EncodeResizesNormalisesImagesAndReshapesTokensRowMajor()
    {
        var encoder = new PoolingEncoder();
        using var rae = Build(encoder);
        rae.eval();
        using var scope = NewDisposeScope();
        var images = Images(24, 1);

        var latent = rae.Encode(images);

        var resized = nn.functional.interpolate(images, [16, 16], mode: InterpolationMode.Bicubic, align_corners: false);
        var expectedInput = (resized - tensor(new[] { 0.485f, 0.456f, 0.406f }).view(1, 3, 1, 1)) / tensor(new[] { 0.229f, 0.224f, 0.225f }).view(1, 3, 1, 1);
        Assert.True((encoder.LastInput! - expectedInput).abs().max().item<float>() < 1e-5);
        Assert.Equal(new long[] { 2, 6, 4, 4 }, latent.shape);
        var tokens = encoder.Encode(expectedInput);
        Assert.Equal(tokens[1, 2 * 4 + 3, 5].item<float>(), latent[1, 5, 2, 3].item<float>(), 5);
        Assert.False(latent.requires_grad);
    }

    [Fact]
    public void NormalisationIsAppliedOnEncodeAndExactlyInvertedOnDecode()
    {
        var (mean, variance) = Stats(3);
        var encoder = new PoolingEncoder();
        using var plain = Build(encoder);
        using var normalised = Build(encoder, new LatentNormalization(mean, variance, 1e-5));
        plain.eval();
        normalised.eval();
        using var scope = NewDisposeScope();
        var images = Images(16, 2);

        var raw = plain.Encode(images);
        var z = normalised.Encode(images);

        var expected = (raw - mean) / (variance + 1e-5).sqrt();
        Assert.True((z - expected).abs().max().item<float>() < 1e-5);
        Assert.True((normalised.Normalization!.Denormalize(z) - raw).abs().max().item<float>() < 1e-5);
        var decodedFromNormalised = normalised.Decode(z);
        var decodedFromRaw = plain.Decode(raw);
        Assert.Equal(new long[] { 2, 3, 16, 16 }, decodedFromNormalised.shape);
        Assert.True((decodedFromNormalised - decodedFromRaw).abs().max().item<float>() < 1e-4);
        Assert.True((normalised.forward(images) - decodedFromNormalised).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void StatisticsOfRankThreeAndFourAreBothAccepted()
    {
        var (mean, variance) = Stats(4);
        using var rank3 = new LatentNormalization(mean, variance);
        using var rank4 = new LatentNormalization(mean.unsqueeze(0), variance.unsqueeze(0));
        using var scope = NewDisposeScope();
        var z = randn(2, 6, 4, 4);
        Assert.True(rank3.Normalize(z).eq(rank4.Normalize(z)).all().item<bool>());
        Assert.True(rank3.Denormalize(z).eq(rank4.Denormalize(z)).all().item<bool>());

        var rank2 = Assert.Throws<ArgumentException>(() => new LatentNormalization(mean[0], null));
        Assert.Contains("[4,4]", rank2.Message);
        Assert.Throws<ArgumentException>(() => new LatentNormalization(mean.unsqueeze(0).expand(2, -1, -1, -1), null));
        var mismatch = Assert.Throws<ArgumentException>(() => rank3.Normalize(randn(2, 6, 2, 2)));
        Assert.Contains("[6,4,4]", mismatch.Message);
    }

    [Fact]
    public void NoiseIsAddedPerSampleOnlyInTrainingModeAndFollowsTheGenerator()
    {
        using var rae = Build(new PoolingEncoder());
        using var scope = NewDisposeScope();
        var images = Images(16, 5);
        rae.eval();
        var clean = rae.Encode(images, new Generator(9));
        rae.train();
        var noisyA = rae.Encode(images, new Generator(9));
        var noisyB = rae.Encode(images, new Generator(9));
        var noisyC = rae.Encode(images, new Generator(10));

        Assert.True(noisyA.eq(noisyB).all().item<bool>());
        Assert.False(noisyA.allclose(noisyC));
        var noise = noisyA - clean;
        var perSampleStd = noise.flatten(1).std(1);
        Assert.True(perSampleStd.max().item<float>() < 0.8f * 1.3f);
        Assert.True(perSampleStd.min().item<float>() > 0);
        Assert.NotEqual(perSampleStd[0].item<float>(), perSampleStd[1].item<float>(), 3);
    }

    [Fact]
    public void ReshapeBetweenTokensAndGridIsAnExactInverse()
    {
        using var scope = NewDisposeScope();
        var tokens = randn(2, 9, 5);
        var grid = RepresentationAutoencoder.TokensToGrid(tokens);
        Assert.Equal(new long[] { 2, 5, 3, 3 }, grid.shape);
        Assert.Equal(tokens[0, 7, 4].item<float>(), grid[0, 4, 2, 1].item<float>());
        Assert.True(RepresentationAutoencoder.GridToTokens(grid).eq(tokens).all().item<bool>());
        Assert.Throws<ArgumentException>(() => RepresentationAutoencoder.TokensToGrid(randn(1, 8, 2)));
    }

    [Fact]
    public void DecodeOnlyRaeRefusesToEncode()
    {
        using var decoder = new GeneralDecoder(DecoderFile.WithRaeOverrides(6, 4, 16));
        var rae = RepresentationAutoencoder.ForDecoding(decoder, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], null);
        using var scope = NewDisposeScope();
        Assert.Throws<InvalidOperationException>(() => rae.Encode(Images(16, 1)));
        Assert.Equal(new long[] { 1, 3, 16, 16 }, rae.Decode(randn(1, 6, 4, 4)).shape);
    }
}
