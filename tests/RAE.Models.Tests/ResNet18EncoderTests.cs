using RAE.Models.Onnx;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Encoders;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>Loads the Layer3 encoder and the parsed featurizer graph once for a test class.</summary>
public sealed class ResNet18EncoderFixture : IDisposable
{
    public ResNet18EncoderFixture()
    {
        Model = OnnxReader.Load(ResNet18EncoderOptions.DefaultModelPath);
        Preprocessing = ResNetOnnxPreprocessing.Load(ResNet18EncoderOptions.DefaultPreprocessModelPath);
        Encoder = ResNet18Encoder.FromModels(Model, Preprocessing, new ResNet18EncoderOptions(Stage: ResNetStage.Layer3));
    }

    public OnnxModel Model { get; }

    public ResNetOnnxPreprocessing Preprocessing { get; }

    /// <summary>Another encoder over the fixture's parsed models; the caller disposes it.</summary>
    public ResNet18Encoder Build(ResNet18EncoderOptions options) => ResNet18Encoder.FromModels(Model, Preprocessing, options);

    public ResNet18Encoder Encoder { get; }

    /// <summary>Images in [0, 1] from a seeded generator.</summary>
    public static Tensor RandomImages(int batch, int height, int width, long seed)
    {
        using var generator = new Generator((ulong)seed);
        return rand([batch, 3, height, width], generator: generator);
    }

    public Tensor Normalise(Tensor images) =>
        (images - tensor(Encoder.ImageMean.ToArray(), [1, 3, 1, 1])) / tensor(Encoder.ImageStd.ToArray(), [1, 3, 1, 1]);

    /// <summary>Bitwise-equal values and equal shapes.</summary>
    public static bool Same(Tensor actual, Tensor expected)
    {
        if (!actual.shape.SequenceEqual(expected.shape)) return false;
        using var equal = actual.eq(expected);
        using var all = equal.all();
        return all.item<bool>();
    }

    public void Dispose() => Encoder.Dispose();
}

public sealed class ResNet18EncoderTests(ResNet18EncoderFixture fixture) : IClassFixture<ResNet18EncoderFixture>
{
    [Fact]
    public void Layout_RecoversTheResNetStagesFromTheGraphWiring()
    {
        var layout = fixture.Encoder.Layout;

        Assert.Equal("Input247", layout.InputName);
        Assert.Equal(new[] { 2, 2, 2, 3 }, layout.Stages.Select(s => s.Blocks.Count));
        Assert.Equal(new long[] { 64, 128, 256, 512 }, layout.Stages.Select(s => s.Channels));
        Assert.Equal(new long[] { 4, 8, 16, 32 }, layout.Stages.Select(s => s.CumulativeStride));
        Assert.Equal(
            new[] { "ReLU283_Output_0", "ReLU315_Output_0", "ReLU347_Output_0", "ReLU393_Output_0" },
            layout.Stages.Select(s => s.OutputName));
        var projections = layout.Stages.Select(s => s.Blocks.Count(b => b.Downsample is not null));
        Assert.Equal(new[] { 0, 1, 1, 1 }, projections);
        Assert.Equal(new long[] { 3, 3, 2, 2 }, layout.StemConv.Pads);
        Assert.Equal(new long[] { 1, 1, 0, 0 }, layout.MaxPoolPads);
        Assert.Equal(new AveragePoolSpec(7, 1, "Pooling395_Output_0"), layout.FinalPool);
    }

    [Fact]
    public void Weights_EveryInitializerIsLoadedUnderATorchvisionKey()
    {
        var state = fixture.Encoder.state_dict();
        var initializers = fixture.Model.Graph.Initializers;

        Assert.Equal(110, state.Count);
        Assert.Equal(state.Keys.Order(), fixture.Encoder.WeightSources.Keys.Order());
        Assert.Equal(initializers.Keys.Order(), fixture.Encoder.WeightSources.Values.Order());
        Assert.Equal(new long[] { 64, 3, 7, 7 }, state["conv1.weight"].shape);
        Assert.Equal(new long[] { 128, 64, 1, 1 }, state["layer2.0.downsample.0.weight"].shape);
        Assert.Equal(new long[] { 512 }, state["layer4.2.bn2.running_var"].shape);
        foreach (var (key, source) in fixture.Encoder.WeightSources)
        {
            using var expected = initializers[source].ToTensor();
            Assert.True(ResNet18EncoderFixture.Same(expected, state[key]), $"{key} differs from initializer {source}");
        }
        var parameterCount = fixture.Encoder.parameters().Sum(p => p.numel());
        var runningStatCount = state.Where(kv => kv.Key.Contains("running_")).Sum(kv => kv.Value.numel());
        Assert.Equal(initializers.Values.Sum(t => t.ElementCount), parameterCount + runningStatCount);
        Assert.All(fixture.Encoder.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void Load_WithDefaults_FindsTheCopiedOnnxFilesAndImplementsTheRaeEncoderContract()
    {
        using var loaded = ResNet18Encoder.Load();
        IRepresentationEncoder encoder = loaded;
        var preprocessing = fixture.Preprocessing;

        Assert.Equal(ResNetStage.Layer3, loaded.Stage);
        Assert.Equal((16, 256), (encoder.PatchSize, encoder.HiddenSize));
        Assert.Equal(preprocessing.ChannelAveragesRgb().Select(a => a / 255f), encoder.ImageMean);
        Assert.Equal(3, encoder.ImageStd.Count);
    }

    [Fact]
    public void Encode_IsDeterministicAndReturnsTheGridFlattenedRowMajor()
    {
        using var scope = NewDisposeScope();
        using var images = ResNet18EncoderFixture.RandomImages(2, 224, 224, seed: 7);
        var normalised = fixture.Normalise(images);

        var tokens = fixture.Encoder.Encode(normalised);
        var again = fixture.Encoder.Encode(normalised);
        var grid = fixture.Encoder.EncodeGrid(normalised);

        Assert.Equal(new long[] { 2, 14 * 14, 256 }, tokens.shape);
        Assert.True(ResNet18EncoderFixture.Same(tokens, again), "two Encode calls on the same input differ");
        Assert.Equal(new long[] { 2, 256, 14, 14 }, grid.shape);
        // Token n is grid cell (n / w, n % w).
        Assert.True(ResNet18EncoderFixture.Same(tokens[1, 3 * 14 + 5], grid[1, .., 3, 5]));
        Assert.True(ResNet18EncoderFixture.Same(tokens[0, 13 * 14 + 13], grid[0, .., 13, 13]));
        Assert.True(tokens.abs().max().item<float>() > 0, "features are all zero");
    }

    [Theory]
    [InlineData(ResNetStage.Layer1, 4, 64)]
    [InlineData(ResNetStage.Layer2, 8, 128)]
    [InlineData(ResNetStage.Layer4, 32, 512)]
    public void Encode_StageSelectsTheGrid(ResNetStage stage, int stride, int channels)
    {
        using var encoder = fixture.Build(new ResNet18EncoderOptions(Stage: stage));
        using var scope = NewDisposeScope();
        using var images = ResNet18EncoderFixture.RandomImages(1, 64, 96, seed: 3);
        var normalised = fixture.Normalise(images);

        var tokens = encoder.Encode(normalised);
        var stages = encoder.ForwardStages(encoder.ToBackboneInput(normalised));

        Assert.Equal((stride, channels), (encoder.PatchSize, encoder.HiddenSize));
        Assert.Equal(new long[] { 1, 64 / stride * (96 / stride), channels }, tokens.shape);
        var expected = stages[(int)stage - 1].flatten(2).transpose(1, 2);
        Assert.True(ResNet18EncoderFixture.Same(tokens, expected), $"{stage} tokens are not the {stage} feature map");
    }

    [Fact]
    public void Encode_At256GivesTheRaeSixteenBySixteenGrid()
    {
        using var scope = NewDisposeScope();
        using var images = ResNet18EncoderFixture.RandomImages(1, 256, 256, seed: 11);

        var tokens = fixture.Encoder.Encode(fixture.Normalise(images));

        Assert.Equal(new long[] { 1, 256, 256 }, tokens.shape);
        Assert.False(tokens.isnan().any().item<bool>());
    }

    [Fact]
    public void Encode_RejectsSizesThatAreNotAMultipleOfTheStride()
    {
        using var images = zeros(1, 3, 100, 224);

        var error = Assert.Throws<ArgumentException>(() => fixture.Encoder.Encode(images));

        Assert.Contains("100x224", error.Message);
    }

    [Fact]
    public void Load_MissingOnnxFile_SaysWhereItComesFrom()
    {
        var path = Path.Combine(Path.GetTempPath(), $"no-such-{Guid.NewGuid():N}", "ResNet18.onnx");

        var error = Assert.Throws<FileNotFoundException>(() => ResNet18Encoder.Load(new ResNet18EncoderOptions(ModelPath: path)));

        Assert.Contains(path, error.Message);
        Assert.Contains("Microsoft.ML.DnnImageFeaturizer.ResNet18", error.Message);
    }

    [Fact]
    public void PerChannelMeanSubtraction_IsTheBgrPixelScaleMinusChannelAverages()
    {
        using var encoder = fixture.Build(new ResNet18EncoderOptions(MeanSubtraction: ResNetMeanSubtraction.PerChannel));
        using var scope = NewDisposeScope();
        using var images = ResNet18EncoderFixture.RandomImages(1, 64, 96, seed: 5);
        var averagesBgr = fixture.Preprocessing.ChannelAveragesRgb().Reverse().ToArray();

        var input = encoder.ToBackboneInput(fixture.Normalise(images));

        var expected = images.flip(1) * 255f - tensor(averagesBgr, [1, 3, 1, 1]);
        Assert.True(input.allclose(expected, rtol: 0, atol: 1e-3), "per-channel preprocessing differs");
    }
}
