using RAE.Configuration;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Losses;
using RAE.Models.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Training;

public sealed class Stage1TrainingStepTests(ITestOutputHelper output)
{
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

    private static RepresentationAutoencoder BuildRae(double noiseTau)
    {
        using var generator = new Generator(1);
        var decoder = new DecoderConfig(HiddenSize: 999, DecoderHiddenSize: 16, DecoderNumHiddenLayers: 1, DecoderNumAttentionHeads: 2,
            DecoderIntermediateSize: 32, PatchSize: 99, ImageSize: 990);
        return new RepresentationAutoencoder(new PoolingEncoder(), decoder, new RaeOptions(EncoderInputSize: 16, DecoderPatchSize: 4, NoiseTau: noiseTau),
            generator: generator);
    }

    private static Stage1OptimizerSettings Constant(double lr) => new(new LearningRateSchedule(lr, lr, 0, 1_000_000, DecayShape.Linear, false));

    private static Tensor Images()
    {
        using var generator = new Generator(5);
        return rand([2, 3, 16, 16], generator: generator);
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    private static bool Changed(nn.Module module, Dictionary<string, Tensor> before) =>
        module.named_parameters().Any(p => !p.parameter.detach().allclose(before[p.name], rtol: 0, atol: 0));

    [Fact]
    public void FlagsFollowTheEpochScheduleAndADisabledWeightTurnsThemOff()
    {
        var schedule = new Stage1LossSchedule(new GanLossConfig { DiscStart = 2, DiscUpdStart = 1, LpipsStart = 0.5 }, stepsPerEpoch: 10);
        Assert.False(schedule.UseLpips(4));
        Assert.True(schedule.UseLpips(5));
        Assert.False(schedule.TrainDiscriminator(9));
        Assert.True(schedule.TrainDiscriminator(10));
        Assert.False(schedule.UseGan(19));
        Assert.True(schedule.UseGan(20));
        var off = new Stage1LossSchedule(new GanLossConfig { DiscWeight = 0, PerceptualWeight = 0 }, stepsPerEpoch: 10);
        Assert.False(off.UseGan(1000) || off.TrainDiscriminator(1000) || off.UseLpips(1000));
    }

    [Fact]
    public void StepsSwitchOnTheDiscriminatorUpdatesThenTheGanLossAndTheDiscriminatorScheduleCountsOnlyItsUpdates()
    {
        using var images = Images();
        using var rae = BuildRae(noiseTau: 0.8);
        using var ema = BuildRae(noiseTau: 0.8);
        ExponentialMovingAverage.CopyFrom(ema, rae);
        using var lpips = new Lpips();
        using var disc = nn.Linear(3 * 16 * 16, 4);
        var discSchedule = new Stage1OptimizerSettings(new LearningRateSchedule(1e-3, 1e-4, 4, 10, DecayShape.Cosine, warmupFromZero: true));
        var losses = new Stage1LossSchedule(new GanLossConfig { DiscStart = 1, DiscUpdStart = 0.5, LpipsStart = 0 }, stepsPerEpoch: 2);
        using var step = new Stage1TrainingStep(rae, losses, Constant(1e-3), new DiffAug(1.0, 0.0), new GeneratorUniformDraws(new Generator(3)), lpips,
            new Stage1Discriminator(disc, x => disc.forward(x.flatten(1))), discSchedule, ema, emaDecay: 0.9);
        using var noise = new Generator(9);

        var decoderBefore = Snapshot(rae.Decoder);
        var discBefore = Snapshot(disc);
        var first = step.Run(images, noise);
        Assert.False(first.UsedGan || first.TrainedDiscriminator);
        Assert.True(first.UsedLpips);
        Assert.True(Changed(rae.Decoder, decoderBefore));
        Assert.False(Changed(disc, discBefore));
        Assert.True(Changed(ema, Snapshot(rae)), "the EMA moves towards, but not onto, the decoder");
        Assert.Equal(0, step.DiscriminatorStepCount);
        Assert.Equal(first.ReconstructionLoss + first.LpipsLoss, first.TotalLoss, 5);

        var second = step.Run(images, noise);
        Assert.True(second.TrainedDiscriminator);
        Assert.False(second.UsedGan);
        Assert.True(Changed(disc, discBefore));
        Assert.Equal(1, step.DiscriminatorStepCount);
        Assert.Equal(discSchedule.Schedule.LearningRate(0), second.DiscriminatorLearningRate!.Value, 12);
        Assert.InRange(second.DiscriminatorAccuracy!.Value, 0, 1);

        var third = step.Run(images, noise);
        Assert.True(third.UsedGan && third.TrainedDiscriminator);
        Assert.True(third.AdaptiveWeight > 0 && double.IsFinite(third.GanLoss));
        Assert.Equal(third.ReconstructionLoss + third.LpipsLoss + 0.75 * third.AdaptiveWeight * third.GanLoss, third.TotalLoss, 4);
        // Global step 2, but only the second discriminator update: the discriminator schedule is read at index 1.
        Assert.Equal(discSchedule.Schedule.LearningRate(1), third.DiscriminatorLearningRate!.Value, 12);
        Assert.Equal(3, step.StepCount);
        foreach (var tensor in decoderBefore.Values.Concat(discBefore.Values)) tensor.Dispose();
    }

    [Fact]
    public void ReconstructionOnlyTrainingLowersTheEvalModeL1()
    {
        // Images constant on each 4×4 patch, so that the pooled latent holds everything needed to reconstruct them.
        using var full = Images();
        using var coarse = full[.., .., ..4, ..4];
        using var images = nn.functional.interpolate(coarse, [16, 16], mode: InterpolationMode.Nearest);
        using var rae = BuildRae(noiseTau: 0);
        var losses = new Stage1LossSchedule(new GanLossConfig { DiscWeight = 0, PerceptualWeight = 0 }, stepsPerEpoch: 10);
        using var step = new Stage1TrainingStep(rae, losses, Constant(3e-3), new DiffAug(1.0, 0.0), new GeneratorUniformDraws());
        double EvalL1()
        {
            rae.eval();
            using var guard = no_grad();
            using var recon = rae.forward(images);
            using var l1 = (recon - images).abs().mean();
            return l1.item<float>();
        }
        var before = EvalL1();
        using var noise = new Generator(2);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 40; i++) step.Run(images, noise);
        output.WriteLine($"40 steps in {watch.Elapsed.TotalSeconds:F1} s");
        var after = EvalL1();
        output.WriteLine($"eval L1 {before:g4} -> {after:g4}");
        Assert.True(after < 0.5 * before, $"eval L1 {before:g4} -> {after:g4}");
    }

    [Fact]
    public void AMissingDiscriminatorOrPerceptualLossIsNamed()
    {
        using var rae = BuildRae(noiseTau: 0);
        var gan = new Stage1LossSchedule(new GanLossConfig { PerceptualWeight = 0 }, stepsPerEpoch: 1);
        var error = Assert.Throws<ArgumentException>(() => new Stage1TrainingStep(rae, gan, Constant(1e-3), new DiffAug(1, 0), new GeneratorUniformDraws()));
        Assert.Contains("disc_weight", error.Message);
        var perceptual = new Stage1LossSchedule(new GanLossConfig { DiscWeight = 0 }, stepsPerEpoch: 1);
        error = Assert.Throws<ArgumentException>(() => new Stage1TrainingStep(rae, perceptual, Constant(1e-3), new DiffAug(1, 0), new GeneratorUniformDraws()));
        Assert.Contains("perceptual_weight", error.Message);
    }
}
