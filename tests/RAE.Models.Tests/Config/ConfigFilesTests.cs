using RAE.Configuration;

namespace RAE.Models.Tests.Config;

/// <summary>Every configuration shipped under configs/ loads, validates and survives a write/read cycle; key values are checked.</summary>
public sealed class ConfigFilesTests
{
    private static string ConfigsFolder => Path.Combine(TestRepository.Root, "configs");

    private static RaeConfig LoadShipped(string relativePath) => RaeConfig.Load(Path.Combine(ConfigsFolder, relativePath));

    private static IEnumerable<string> ShippedPaths() =>
        Directory.EnumerateFiles(ConfigsFolder, "*.yaml", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(ConfigsFolder, path).Replace('\\', '/'))
            .Order(StringComparer.Ordinal);

    public static TheoryData<string> ShippedConfigs()
    {
        var data = new TheoryData<string>();
        foreach (var path in ShippedPaths()) data.Add(path);
        return data;
    }

    [Theory]
    [MemberData(nameof(ShippedConfigs))]
    public void EveryShippedConfigLoadsAndRoundTrips(string relativePath)
    {
        var config = LoadShipped(relativePath);

        var reread = RaeConfig.Parse(config.ToYaml(), relativePath);
        Assert.Equal(config.ToYaml(), reread.ToYaml());
        Assert.True(config.Stage1 is not null || config.Stage2 is not null, $"{relativePath} configures no model");
    }

    [Fact]
    public void TheConfigsFolderHoldsEveryExpectedFile()
    {
        var files = ShippedPaths().ToHashSet();

        foreach (var expected in new[]
                 {
                     "stage1/DINOv2-B.yaml", "stage1/DINOv2-B_512.yaml", "stage1/MAE.yaml", "stage1/SigLIP2.yaml",
                     "stage1/training/DINOv2-B_decXL.yaml",
                     "stage2/training/ImageNet256/DiTDH-XL_DINOv2-B.yaml", "stage2/training/ImageNet256/DiTDH-S_DINOv2-B.yaml",
                     "stage2/sampling/ImageNet256/DiTDHXL-DINOv2-B.yaml", "stage2/sampling/ImageNet256/DiTDHXL-DINOv2-B_AG.yaml",
                     "stage2/sampling/ImageNet512/DiTDH-XL_DINOv2-B_decXL_AG.yaml",
                     "tiny/stage2-ddt-tiny.yaml", "tiny/sample-ddt-tiny.yaml", "tiny/sample-ddt-tiny-ag.yaml",
                     "tiny/stage2-lightningdit-tiny.yaml", "tiny/stage1-resnet18.yaml",
                 })
            Assert.Contains(expected, files);
        foreach (var decoder in new[] { "ViTB", "ViTL", "ViTXL", "tiny" })
            Assert.True(File.Exists(Path.Combine(ConfigsFolder, "decoder", decoder, "config.json")), $"decoder/{decoder}/config.json");
    }

    [Fact]
    public void Stage2TrainingConfigsCarryTheSpecValues()
    {
        var xl = LoadShipped("stage2/training/ImageNet256/DiTDH-XL_DINOv2-B.yaml");
        var small = LoadShipped("stage2/training/ImageNet256/DiTDH-S_DINOv2-B.yaml");

        Assert.Equal(new EncoderDecoderPair(1152, 2048), ((DiTwDDTHeadParams)xl.Stage2!.Params).HiddenSize);
        Assert.Equal(new EncoderDecoderPair(6, 16), ((DiTwDDTHeadParams)small.Stage2!.Params).NumHeads);
        Assert.Equal((10000L, 2500L), (xl.Training!.SampleEvery, small.Training!.SampleEvery));
        Assert.Equal(xl.Training with { SampleEvery = 0, Optimizer = small.Training.Optimizer }, small.Training with { SampleEvery = 0 });
        Assert.True(xl.Transport.TimeDistribution.IsLogitNormal);
        Assert.Equal((1400, 1024, 42L, 0.9995), (xl.Training.Epochs, xl.Training.GlobalBatchSize, xl.Training.GlobalSeed, xl.Training.EmaDecay));
        Assert.Equal((LrScheduleType.Linear, 40.0, 800.0, false), (xl.Training.Scheduler!.Type, xl.Training.Scheduler.WarmupEpochs, xl.Training.Scheduler.DecayEndEpoch, xl.Training.Scheduler.WarmupFromZero));
        Assert.Equal(25000L, xl.Eval!.EvalInterval);
    }

    [Fact]
    public void SamplingConfigsCarryTheSpecValues()
    {
        var plain = LoadShipped("stage2/sampling/ImageNet256/DiTDHXL-DINOv2-B.yaml");
        var guided = LoadShipped("stage2/sampling/ImageNet256/DiTDHXL-DINOv2-B_AG.yaml");
        var large = LoadShipped("stage2/sampling/ImageNet512/DiTDH-XL_DINOv2-B_decXL_AG.yaml");

        foreach (var config in new[] { plain, guided, large })
            Assert.Equal(("euler", 50), (config.Sampler.SamplingMethod, config.Sampler.NumSteps));
        Assert.Equal((GuidanceMethod.Cfg, 1.0, false), (plain.Guidance.Method, plain.Guidance.Scale, plain.Guidance.IsActive));
        Assert.Equal((GuidanceMethod.Autoguidance, 1.42), (guided.Guidance.Method, guided.Guidance.Scale));
        Assert.Equal(new EncoderDecoderPair(384, 2048), ((DiTwDDTHeadParams)guided.Guidance.GuidanceModel!.Params).HiddenSize);
        Assert.Equal(Math.Sqrt(48), guided.TimeDistShift, 12);
        Assert.Equal((1.5, 448, 32), (large.Guidance.Scale, large.Stage1!.Params.EncoderInputSize, large.Stage2!.Params.InputSize));
        Assert.Equal(Math.Sqrt(192), large.TimeDistShift, 12);
        Assert.Equal(large.Stage1.Params.TokenGridSize, large.Misc.LatentSize[1]);
    }

    [Fact]
    public void TinyConfigsAreSmallEnoughForACpu()
    {
        var ddt = LoadShipped("tiny/stage2-ddt-tiny.yaml");
        var model = (DiTwDDTHeadParams)ddt.Stage2!.Params;

        Assert.Equal((new EncoderDecoderPair(64, 96), new EncoderDecoderPair(2, 1), new EncoderDecoderPair(4, 4)), (model.HiddenSize, model.Depth, model.NumHeads));
        Assert.Equal(new[] { 8, 4, 4 }, ddt.Misc.LatentSize);
        Assert.Equal(10, ddt.Misc.NumClasses);
        Assert.Equal(DataSource.SyntheticLatents, ddt.Data!.Source);
        Assert.Null(ddt.Stage1);
        var stepsPerEpoch = ddt.Data.NumSamples / ddt.Training!.GlobalBatchSize!.Value;
        var budget = Math.Min(ddt.Training.MaxSteps ?? long.MaxValue, (long)stepsPerEpoch * ddt.Training.Epochs);
        Assert.InRange(budget, 100, 1000);
        Assert.Equal(0, ddt.Training.NumWorkers);

        var sample = LoadShipped("tiny/sample-ddt-tiny.yaml");
        Assert.Equal((2.5, 0.2, 0.8), (sample.Guidance.Scale, sample.Guidance.TMin, sample.Guidance.TMax));
        Assert.Equal(model, sample.Stage2!.Params);
        var guided = LoadShipped("tiny/sample-ddt-tiny-ag.yaml");
        Assert.Equal(GuidanceMethod.Autoguidance, guided.Guidance.Method);
        Assert.Equal(new EncoderDecoderPair(32, 64), ((DiTwDDTHeadParams)guided.Guidance.GuidanceModel!.Params).HiddenSize);

        var resnet = LoadShipped("tiny/stage1-resnet18.yaml");
        Assert.Equal(RaeParams.ResNet18, resnet.Stage1!.Params.EncoderCls);
        Assert.Equal((0.0, 0.0), (resnet.Gan!.Loss.DiscWeight, resnet.Gan.Loss.PerceptualWeight));
    }
}
