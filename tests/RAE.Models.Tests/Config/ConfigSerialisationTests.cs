using RAE.Configuration;

namespace RAE.Models.Tests.Config;

public sealed class ConfigSerialisationTests
{
    public static TheoryData<string> ReferenceTexts() => new()
    {
        ReferenceConfigTexts.Stage2TrainingXL,
        ReferenceConfigTexts.SamplingAutoguidance,
        ReferenceConfigTexts.LegacyTraining512,
        ReferenceConfigTexts.Stage1Training,
        """
        stage_2:
          target: LightningDiT
          params: {input_size: 8, patch_size: 2, in_channels: 8, hidden_size: 64, depth: 2, num_heads: 4, num_classes: 10}
        sampler:
          mode: SDE
          params: {sampling_method: euler, diffusion_form: sigma, last_step: null, last_step_size: 0.05, num_steps: 20}
        transport:
          params: {path_type: GVP, prediction: noise, loss_weight: likelihood, train_eps: 0.001, sample_eps: 0.002}
        misc: {latent_size: [8, 8, 8], num_classes: 10, null_label: 10, time_dist_shift_dim: 4096}
        training:
          batch_size: 4
          cfg_scale: 2.0
          scheduler: {type: cosine, warmup_steps: 3, decay_end_steps: 9, warmup_from_zero: false}
        data: {source: synthetic-latents, num_samples: 64, seed: 3}
        """,
    };

    [Theory]
    [MemberData(nameof(ReferenceTexts))]
    public void CanonicalYamlParsesBackToTheSameConfiguration(string yaml)
    {
        var original = RaeConfig.Parse(yaml, "original.yaml");

        var written = original.ToYaml();
        var reread = RaeConfig.Parse(written, "written.yaml");

        Assert.Equal(written, reread.ToYaml());
        Assert.Equal(original.Training, reread.Training, TrainingComparer.Instance);
        Assert.Equal(original.Sampler, reread.Sampler);
        Assert.Equal(original.Transport, reread.Transport);
        Assert.Equal(original.Misc.TimeDistShift, reread.Misc.TimeDistShift);
        Assert.Equal(original.Guidance.GuidanceModel?.Params, reread.Guidance.GuidanceModel?.Params);
        Assert.Equal(original.Stage2?.Params, reread.Stage2?.Params);
        Assert.Equal(original.Stage1?.Params, reread.Stage1?.Params);
    }

    [Fact]
    public void LegacyKeysAreWrittenInTheCurrentForm()
    {
        var written = RaeConfig.Parse(ReferenceConfigTexts.LegacyTraining512, "legacy.yaml").ToYaml();

        Assert.Contains("log_interval: 100", written);
        Assert.Contains("ckpt_every: 5000", written);
        Assert.Contains("scheduler:", written);
        Assert.Contains("warmup_epochs: 40.0", written);
        Assert.DoesNotContain("log_every", written);
        Assert.DoesNotContain("decay_start_epoch", written);
        Assert.DoesNotContain("schedule_type", written);
    }

    [Fact]
    public void FloatsAreWrittenSoPythonYamlReadsThemAsFloats()
    {
        var written = RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "xl.yaml").ToYaml();

        Assert.Contains("atol: 1.0e-06", written);
        Assert.Contains("lr: 0.0002", written);
        Assert.Contains("final_lr: 2.0e-05", written);
        Assert.Contains("time_dist_shift_base: 4096.0", written);
        Assert.Contains("hidden_size: [1152, 2048]", written);
        Assert.Contains("time_dist_type: 'logit-normal_0_1'", written);
        Assert.Contains("t_min: 0.0", written);
        Assert.DoesNotContain("...", written);
    }

    [Fact]
    public void SaveWritesAFileThatLoadsBack()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rae-config-{Guid.NewGuid():N}.yaml");
        try
        {
            var config = RaeConfig.Parse(ReferenceConfigTexts.SamplingAutoguidance, "ag.yaml");
            config.Save(path);

            var loaded = RaeConfig.Load(path);

            Assert.Equal(path, loaded.SourceName);
            Assert.Equal(1.42, loaded.Guidance.Scale);
            Assert.Equal(config.Guidance.GuidanceModel!.Ckpt, loaded.Guidance.GuidanceModel!.Ckpt);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Records hold lists, which compare by reference; compare training options by value.</summary>
    private sealed class TrainingComparer : IEqualityComparer<TrainingConfig?>
    {
        public static readonly TrainingComparer Instance = new();

        private static readonly OptimizerConfig SameOptimizer = new();

        public bool Equals(TrainingConfig? x, TrainingConfig? y) =>
            x is null || y is null ? x is null && y is null
                : x with { Optimizer = SameOptimizer } == y with { Optimizer = SameOptimizer }
                  && x.Optimizer.Betas.SequenceEqual(y.Optimizer.Betas)
                  && (x.Optimizer.Lr, x.Optimizer.WeightDecay, x.Optimizer.Eps) == (y.Optimizer.Lr, y.Optimizer.WeightDecay, y.Optimizer.Eps);

        public int GetHashCode(TrainingConfig? obj) => 0;
    }
}
