using RAE.Configuration;

namespace RAE.Models.Tests.Config;

public sealed class ConfigOverrideTests
{
    [Fact]
    public void OverridesReplaceValuesBeforeValidation()
    {
        var config = RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml",
            ["training.global_batch_size=8", "training.optimizer.lr=1e-3", "stage_2.params.hidden_size=[384, 2048]",
             "stage_2.params.num_heads=[6, 16]", "sampler.params.sampling_method=heun2", "eval.data_path='123'"]);

        Assert.Equal(8, config.Training!.GlobalBatchSize);
        Assert.Equal(1e-3, config.Training.Optimizer.Lr);
        var model = Assert.IsType<DiTwDDTHeadParams>(config.Stage2!.Params);
        Assert.Equal(new EncoderDecoderPair(384, 2048), model.HiddenSize);
        Assert.Equal(new object[] { 384L, 2048L }, (object?[])config.Stage2.RawParams["hidden_size"]!);
        Assert.Equal("heun2", config.Sampler.SamplingMethod);
        Assert.Equal("123", config.Eval!.DataPath);
        Assert.Equal(1400, config.Training.Epochs);
    }

    [Fact]
    public void OverrideOfOneGuidanceSpellingReplacesTheOther()
    {
        var config = RaeConfig.Parse(ReferenceConfigTexts.SamplingAutoguidance, "ag.yaml", ["guidance.t_min=0.25", "guidance.t-max=0.75"]);

        Assert.Equal((0.25, 0.75), (config.Guidance.TMin, config.Guidance.TMax));
    }

    [Fact]
    public void OverrideCreatesMissingSections()
    {
        var config = RaeConfig.Parse("misc:\n  num_classes: 10\n", "misc.yaml", ["training.max_steps=5", "training.scheduler.warmup_steps=2"]);

        Assert.Equal(5L, config.Training!.MaxSteps);
        Assert.Equal(2L, config.Training.Scheduler!.WarmupSteps);
        Assert.Null(config.Training.Scheduler.WarmupEpochs);
    }

    [Fact]
    public void EmptyOverrideValueIsNull()
    {
        var config = RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml", ["training.clip_grad="]);

        Assert.Null(config.Training!.ClipGrad);
    }

    [Fact]
    public void UnknownOverrideKeyNamesTheKeyAndTheOverride()
    {
        var error = Assert.Throws<ConfigException>(() =>
            RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml", ["training.optimizer.lrr=0.1"]));

        Assert.Equal("training.optimizer.lrr", error.KeyPath);
        Assert.Contains("override 'training.optimizer.lrr=0.1'", error.SourceName);
        Assert.Contains("xl.yaml", error.SourceName);
        Assert.Null(error.Line);
        Assert.Contains("unknown key", error.Message);
    }

    [Fact]
    public void IllTypedOverrideIsReportedLikeAFileValue()
    {
        var error = Assert.Throws<ConfigException>(() =>
            RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml", ["training.epochs=abc"]));

        Assert.Equal("training.epochs", error.KeyPath);
        Assert.Contains("override 'training.epochs=abc'", error.Message);
        Assert.Contains("expected an integer, got 'abc'", error.Message);
    }

    [Fact]
    public void OverrideIsRangeChecked()
    {
        var error = Assert.Throws<ConfigException>(() =>
            RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml", ["sampler.params.num_steps=1"]));

        Assert.Equal("sampler.params.num_steps", error.KeyPath);
        Assert.Contains("override", error.SourceName);
    }

    [Theory]
    [InlineData("training.epochs")]
    [InlineData("=3")]
    [InlineData("training..epochs=3")]
    public void MalformedOverridesAreRejected(string assignment)
    {
        var error = Assert.Throws<ConfigException>(() => RaeConfig.Parse("", "empty.yaml", [assignment]));

        Assert.Contains("key.path=value", error.Message);
    }

    [Fact]
    public void OverrideCannotDescendIntoAValue()
    {
        var error = Assert.Throws<ConfigException>(() =>
            RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml", ["training.epochs.first=3"]));

        Assert.Equal("training.epochs", error.KeyPath);
        Assert.Contains("cannot be set inside it", error.Message);
    }

    [Fact]
    public void WithOverridesAppliesToAParsedConfig()
    {
        var original = RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml");

        var changed = original.WithOverrides(["training.global_batch_size=8", "guidance.scale=1.5"]);

        Assert.Equal(8, changed.Training!.GlobalBatchSize);
        Assert.Equal(1.5, changed.Guidance.Scale);
        Assert.Equal(1024, original.Training!.GlobalBatchSize);
        Assert.Equal(original.Training.Scheduler, changed.Training.Scheduler);
    }
}
