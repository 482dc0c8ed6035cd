using RAE.Configuration;

namespace RAE.Models.Tests.Config;

public sealed class ConfigErrorTests
{
    private static ConfigException Fails(string yaml, string source = "bad.yaml") =>
        Assert.Throws<ConfigException>(() => RaeConfig.Parse(yaml, source));

    [Fact]
    public void UnknownKeyIsNamedWithItsFullPathFileAndLine()
    {
        var yaml = ReferenceConfigTexts.Stage2TrainingXL.Replace("    weight_decay: 0.0", "    weight_decay: 0.0\n    momentum: 0.9");
        var expectedLine = yaml.Split('\n').ToList().FindIndex(line => line.Contains("momentum")) + 1;

        var error = Fails(yaml, "configs/x.yaml");

        Assert.Equal("training.optimizer.momentum", error.KeyPath);
        Assert.Equal("configs/x.yaml", error.SourceName);
        Assert.Equal(expectedLine, error.Line);
        Assert.StartsWith($"configs/x.yaml:{expectedLine}: 'training.optimizer.momentum': unknown key", error.Message);
        Assert.Contains("weight_decay", error.Message);
    }

    [Fact]
    public void UnknownSectionAndUnknownNestedKeysAreRejected()
    {
        Assert.Equal("trainer", Fails("trainer:\n  epochs: 3\n").KeyPath);
        Assert.Equal("stage_1.params.encoder_params.model_name", Fails(ReferenceConfigTexts.Dinov2Stage1.Replace("normalize: true", "model_name: x")).KeyPath);
        Assert.Equal("sampler.params.diffusion_form", Fails("sampler:\n  mode: ODE\n  params:\n    diffusion_form: SBDM\n").KeyPath);
        Assert.Equal("gan.loss.disc_weigth", Fails("gan:\n  loss:\n    disc_weigth: 0.5\n").KeyPath);
    }

    [Fact]
    public void ErrorFromAFileNamesThePathAndLine()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rae-config-{Guid.NewGuid():N}.yaml");
        try
        {
            File.WriteAllText(path, "misc:\n  num_classes: 10\ntraining:\n  epochs: 3\n  optimizer:\n    lr: fast\n");

            var error = Assert.Throws<ConfigException>(() => RaeConfig.Load(path));

            Assert.Equal(path, error.SourceName);
            Assert.Equal("training.optimizer.lr", error.KeyPath);
            Assert.Equal(6, error.Line);
            Assert.Contains("expected a number, got 'fast'", error.Message);
            Assert.Contains(path + ":6", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("training:\n  global_batch_size: 12.5\n", "training.global_batch_size", "expected an integer")]
    [InlineData("training:\n  epochs: many\n", "training.epochs", "expected an integer")]
    [InlineData("sampler:\n  params:\n    reverse: maybe\n", "sampler.params.reverse", "expected true or false")]
    [InlineData("misc:\n  latent_size: [768, x, 16]\n", "misc.latent_size", "expected an integer")]
    [InlineData("misc:\n  num_classes: [1, 2]\n", "misc.num_classes", "expected a single value")]
    [InlineData("training:\n  optimizer: 0.1\n", "training.optimizer", "expected a mapping")]
    [InlineData("training:\n  optimizer:\n    betas: {a: 1}\n", "training.optimizer.betas", "expected a list")]
    public void IllTypedValuesNameTheKey(string yaml, string key, string problem)
    {
        var error = Fails(yaml);

        Assert.Equal(key, error.KeyPath);
        Assert.Contains(problem, error.Message);
        Assert.NotNull(error.Line);
    }

    [Theory]
    [InlineData("guidance:\n  t_min: 0.8\n  t_max: 0.2\n", "guidance.t_min", "below t_max")]
    [InlineData("guidance:\n  t-min: 0.5\n  t-max: 0.5\n", "guidance.t-min", "below t_max")]
    [InlineData("guidance:\n  t_max: 1.5\n", "guidance.t_max", "[0, 1]")]
    [InlineData("guidance:\n  scale: -1.0\n", "guidance.scale", ">= 0")]
    [InlineData("guidance:\n  method: magic\n", "guidance.method", "cfg, autoguidance")]
    [InlineData("guidance:\n  method: autoguidance\n  scale: 1.5\n", "guidance.guidance_model", "required for autoguidance")]
    [InlineData("sampler:\n  params:\n    num_steps: 1\n", "sampler.params.num_steps", ">= 2")]
    [InlineData("sampler:\n  params:\n    sampling_method: rk45\n", "sampler.params.sampling_method", "dopri5")]
    [InlineData("sampler:\n  mode: MCMC\n", "sampler.mode", "ODE, SDE")]
    [InlineData("sampler:\n  params:\n    reverse: true\n", "sampler.params.reverse", "not supported")]
    [InlineData("training:\n  global_batch_size: 0\n", "training.global_batch_size", "> 0")]
    [InlineData("training:\n  global_batch_size: 10\n  grad_accum_steps: 4\n", "training.global_batch_size", "divisible")]
    [InlineData("training:\n  ema_decay: 1.5\n", "training.ema_decay", "[0, 1]")]
    [InlineData("training:\n  scheduler:\n    type: step\n", "training.scheduler.type", "linear, cosine")]
    [InlineData("training:\n  scheduler:\n    warmup_epochs: 1\n    warmup_steps: 10\n", "training.scheduler.warmup_steps", "not both")]
    [InlineData("training:\n  scheduler:\n    warmup_epochs: 50\n    decay_end_epoch: 10\n", "training.scheduler.decay_end_epoch", "before the end of the warmup")]
    [InlineData("training:\n  log_every: 10\n  log_interval: 10\n", "training.log_every", "only one spelling")]
    [InlineData("guidance:\n  t_min: 0.1\n  t-min: 0.1\n", "guidance.t-min", "only one spelling")]
    [InlineData("misc:\n  latent_size: [8, 4, 4]\n", "misc.time_dist_shift_base", "must be >= 1")]
    [InlineData("misc:\n  num_classes: 10\n  null_label: 11\n", "misc.null_label", "[0, num_classes = 10]")]
    [InlineData("misc:\n  latent_size: [768, 16]\n", "misc.latent_size", "three positive integers")]
    [InlineData("transport:\n  params:\n    time_dist_type: gaussian\n", "transport.params.time_dist_type", "logit-normal")]
    [InlineData("transport:\n  params:\n    path_type: Cosine\n", "transport.params.path_type", "Linear, GVP, VP")]
    [InlineData("stage_2:\n  target: stage2.models.Unet\n", "stage_2.target", "not a known Stage-2 class")]
    [InlineData("stage_2:\n  target: DiTwDDTHead\n  params:\n    hidden_size: [100, 96]\n    num_heads: [16, 4]\n", "stage_2.params.num_heads", "not divisible")]
    [InlineData("stage_2:\n  target: DiTwDDTHead\n  params:\n    depth: [1, 2, 3]\n", "stage_2.params.depth", "pair")]
    [InlineData("stage_1:\n  target: stage1.RAE\n  params:\n    encoder_input_size: 230\n", "stage_1.params.encoder_input_size", "patch size 14")]
    [InlineData("stage_1:\n  target: stage1.RAE\n  params:\n    encoder_cls: ViT\n", "stage_1.params.encoder_cls", "ResNet18")]
    [InlineData("gan:\n  disc:\n    arch:\n      recipe: L_14\n", "gan.disc.arch.recipe", "S_8")]
    [InlineData("eval:\n  metrics: [psnr, is]\n", "eval.metrics", "'is'")]
    public void OutOfRangeValuesNameTheKey(string yaml, string key, string problem)
    {
        var error = Fails(yaml);

        Assert.Equal(key, error.KeyPath);
        Assert.Contains(problem, error.Message);
        Assert.Equal("bad.yaml", error.SourceName);
    }

    [Fact]
    public void Stage2ModelMustMatchTheMiscLatent()
    {
        var yaml = ReferenceConfigTexts.Stage2TrainingXL.Replace("latent_size: [768, 16, 16]", "latent_size: [768, 32, 32]");

        var error = Fails(yaml);

        Assert.Equal("stage_2", error.KeyPath);
        Assert.Contains("input_size 16 differs from the misc.latent_size grid 32x32", error.Message);
    }

    [Fact]
    public void GuideModelMustMatchTheMiscClasses()
    {
        var yaml = ReferenceConfigTexts.SamplingAutoguidance.Replace("      num_classes: 1000\n", "      num_classes: 10\n");

        var error = Fails(yaml);

        Assert.Equal("guidance", error.KeyPath);
        Assert.Contains("guidance.guidance_model.params.num_classes 10", error.Message);
    }

    [Fact]
    public void InvalidYamlReportsTheLine()
    {
        var error = Fails("training:\n  epochs: 3\n  optimizer: [1, 2\n");

        Assert.Null(error.KeyPath);
        Assert.NotNull(error.Line);
        Assert.Contains("not valid YAML", error.Message);
    }

    [Fact]
    public void DuplicateKeysAreAnError()
    {
        var error = Fails("training:\n  epochs: 3\n  epochs: 4\n");

        Assert.Contains("bad.yaml", error.Message);
        Assert.NotNull(error.Line);
    }

    [Fact]
    public void TopLevelMustBeAMapping()
    {
        var error = Fails("- stage_1\n- stage_2\n");

        Assert.Contains("top level must be a mapping", error.Message);
    }

    [Fact]
    public void MissingFileIsReported() =>
        Assert.Throws<FileNotFoundException>(() => RaeConfig.Load(Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.yaml")));
}
