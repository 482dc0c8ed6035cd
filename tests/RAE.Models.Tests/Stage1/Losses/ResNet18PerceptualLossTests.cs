using RAE.Configuration;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Losses;
using RAE.Models.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1.Losses;

/// <summary>Loads the ResNet18 perceptual loss (the featurizer ONNX shipped with the build) once for the class.</summary>
public sealed class ResNet18PerceptualLossFixture : IDisposable
{
    public ResNet18PerceptualLoss Loss { get; } = ResNet18PerceptualLoss.Load();

    public void Dispose() => Loss.Dispose();
}

public sealed class ResNet18PerceptualLossTests(ResNet18PerceptualLossFixture fixture, ITestOutputHelper output) : IClassFixture<ResNet18PerceptualLossFixture>
{
    private ResNet18PerceptualLoss Loss => fixture.Loss;

    /// <summary>Images in [−1,1] from a seeded generator.</summary>
    private static Tensor SignedImages(int batch, int size, ulong seed)
    {
        using var generator = new Generator(seed);
        using var unit = rand([batch, 3, size, size], generator: generator);
        return unit * 2.0 - 1.0;
    }

    private static float[] Values(Tensor tensor) => tensor.detach().flatten().data<float>().ToArray();

    [Fact]
    public void IdenticalImagesAreAtDistanceZeroAndTheDistanceIsSymmetric()
    {
        using var x = SignedImages(2, 32, 1);
        using var y = SignedImages(2, 32, 2);
        using var same = Loss.PerSample(x, x);
        Assert.Equal(new long[] { 2, 1, 1, 1 }, same.shape);
        Assert.All(Values(same), value => Assert.Equal(0f, value));
        using var xy = Loss.PerSample(x, y);
        using var yx = Loss.PerSample(y, x);
        Assert.Equal(Values(xy), Values(yx));
        // Each of the 5 levels contributes at most 4 (two unit vectors are at most 2 apart).
        Assert.All(Values(xy), value => Assert.InRange(value, 1e-3f, 4f * ResNet18PerceptualLoss.LevelCount));
        output.WriteLine($"d(x, y) = {string.Join(", ", Values(xy))}");
    }

    [Fact]
    public void TheDistanceGrowsWithTheNoiseAmplitude()
    {
        using var x = SignedImages(2, 64, 3);
        using var generator = new Generator(4);
        using var noise = randn(x.shape, generator: generator);
        var previous = new float[] { 0, 0 };
        foreach (var amplitude in new[] { 0.02, 0.1, 0.3, 0.8 })
        {
            using var noisy = x + noise * amplitude;
            using var distance = Loss.PerSample(x, noisy);
            var values = Values(distance);
            output.WriteLine($"amplitude {amplitude}: {string.Join(", ", values)}");
            for (var i = 0; i < values.Length; i++) Assert.True(values[i] > previous[i], $"sample {i}: {values[i]} after {previous[i]} at amplitude {amplitude}");
            previous = values;
        }
    }

    [Fact]
    public void GradientsReachBothInputsFiniteAndNonzeroWhileEveryParameterStaysFrozen()
    {
        using var x0 = SignedImages(2, 32, 5);
        using var y0 = SignedImages(2, 32, 6);
        using var x = x0.detach().requires_grad_(true);
        using var y = y0.detach().requires_grad_(true);
        using (var loss = Loss.Loss(x, y)) loss.backward();
        foreach (var input in new[] { x, y })
        {
            using var grad = input.grad!;
            Assert.True(grad.isfinite().all().item<bool>(), "the input gradient has a non-finite value");
            Assert.True(grad.abs().sum().item<float>() > 0, "the input gradient is zero");
        }
        Assert.NotEmpty(Loss.parameters());
        Assert.All(Loss.parameters(), parameter => Assert.False(parameter.requires_grad));
        Assert.All(Loss.parameters(), parameter => Assert.Null(parameter.grad));
    }

    [Fact]
    public void TrainModeChangesNothingAndBadShapesAreNamed()
    {
        using var x = SignedImages(1, 32, 7);
        using var y = SignedImages(1, 32, 8);
        using var eval = Loss.PerSample(x, y);
        Loss.train();
        try
        {
            using var train = Loss.PerSample(x, y);
            Assert.Equal(Values(eval), Values(train));
        }
        finally
        {
            Loss.eval();
        }
        using var odd = SignedImages(1, 48, 9);
        Assert.Contains("multiples of 32", Assert.Throws<ArgumentException>(() => Loss.PerSample(odd, odd)).Message);
        using var other = SignedImages(2, 32, 9);
        Assert.Contains("of one shape", Assert.Throws<ArgumentException>(() => Loss.PerSample(x, other)).Message);
    }

    /// <summary>A frozen stand-in encoder: mean-pools 4×4 patches and maps the 3 channels to 6 with a fixed matrix.</summary>
    private sealed class PoolingEncoder : IRepresentationEncoder
    {
        private readonly Tensor _projection = tensor(new float[] { 1, 0, 0, 2, 0, 1, 0, 1, 0, -1, 1, 0, 0, 0, 1, 0, 3, 1 }, [3, 6]);

        public int PatchSize => 4;
        public int HiddenSize => 6;
        public IReadOnlyList<float> ImageMean { get; } = [0.485f, 0.456f, 0.406f];
        public IReadOnlyList<float> ImageStd { get; } = [0.229f, 0.224f, 0.225f];

        public Tensor Encode(Tensor images) => nn.functional.avg_pool2d(images, 4).flatten(2).transpose(1, 2).matmul(_projection);
    }

    [Fact]
    public void AStage1StepWithTheResNet18PerceptualLossLowersReconstructionPlusPerceptualAndLeavesTheLossFrozen()
    {
        using var generator = new Generator(1);
        var decoder = new DecoderConfig(HiddenSize: 999, DecoderHiddenSize: 16, DecoderNumHiddenLayers: 1, DecoderNumAttentionHeads: 2,
            DecoderIntermediateSize: 32, PatchSize: 99, ImageSize: 990);
        using var rae = new RepresentationAutoencoder(new PoolingEncoder(), decoder, new RaeOptions(EncoderInputSize: 32, DecoderPatchSize: 4, NoiseTau: 0),
            generator: generator);
        // Images constant on each 4×4 patch, so that the pooled latent holds everything needed to reconstruct them.
        using var coarse = ResNet18EncoderFixture.RandomImages(2, 8, 8, seed: 10);
        using var images = nn.functional.interpolate(coarse, [32, 32], mode: InterpolationMode.Nearest);
        var lossConfig = new GanLossConfig { DiscWeight = 0, PerceptualWeight = 1.0, LpipsStart = 0, Perceptual = GanLossConfig.ResNet18 };
        var schedule = new LearningRateSchedule(3e-3, 3e-3, 0, 1_000_000, DecayShape.Linear, false);
        using var step = new Stage1TrainingStep(rae, new Stage1LossSchedule(lossConfig, stepsPerEpoch: 10), new Stage1OptimizerSettings(schedule),
            new DiffAug(1.0, 0.0), new GeneratorUniformDraws(), Loss);
        var frozenBefore = Loss.state_dict().ToDictionary(entry => entry.Key, entry => entry.Value.clone());

        double EvalLoss()
        {
            rae.eval();
            using var guard = no_grad();
            using var recon = rae.forward(images);
            using var l1 = (recon - images).abs().mean();
            using var perceptual = Loss.Loss(images * 2.0 - 1.0, recon * 2.0 - 1.0);
            return l1.item<float>() + perceptual.item<float>();
        }

        var before = EvalLoss();
        using var noise = new Generator(2);
        Stage1StepResult? last = null;
        for (var i = 0; i < 20; i++) last = step.Run(images, noise);
        var after = EvalLoss();
        output.WriteLine($"eval L1 + perceptual {before:g4} -> {after:g4}");
        Assert.True(last!.UsedLpips && last.LpipsLoss > 0 && double.IsFinite(last.TotalLoss));
        Assert.Equal(last.ReconstructionLoss + last.LpipsLoss, last.TotalLoss, 4);
        Assert.True(after < 0.8 * before, $"eval L1 + perceptual {before:g4} -> {after:g4}");
        foreach (var (key, value) in Loss.state_dict())
        {
            Assert.True(value.allclose(frozenBefore[key], rtol: 0, atol: 0), $"the perceptual loss's '{key}' changed during training");
            frozenBefore[key].Dispose();
        }
    }
}
