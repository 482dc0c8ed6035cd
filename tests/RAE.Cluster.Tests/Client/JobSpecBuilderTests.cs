using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Cluster.Tests.Stage2;

namespace RAE.Cluster.Tests.Client;

/// <summary>The shared spec builders: what a training job needs from its configuration, and the canonical form it travels in.</summary>
public sealed class JobSpecBuilderTests
{
    private const string DataSection = """
        data:
          source: synthetic-latents
          num_samples: 64
          seed: 3

        """;

    private static string TinyConfigWithout(string text)
    {
        Assert.Contains(text, DiTTestJobs.TinyConfig + "\n");
        return (DiTTestJobs.TinyConfig + "\n").Replace(text, "", StringComparison.Ordinal);
    }

    [Fact]
    public void ATrainingConfigWithoutADataSectionIsAnErrorNamingTheSection()
    {
        var config = RaeConfig.Parse(TinyConfigWithout(DataSection), "no-data.yaml");
        var error = Assert.Throws<ConfigException>(() => TrainingJobSpecs.FromConfig(config, ranks: 1));
        Assert.Contains("no-data.yaml", error.Message);
        Assert.Contains("'data' section", error.Message);
    }

    [Fact]
    public void EveryReferenceTrainingConfigNeedsADataSectionBeforeItCanRun()
    {
        var reference = RaeConfig.Load(Cli.RepositoryFile("configs/stage2/training/ImageNet256/DiTDH-S_DINOv2-B.yaml"));
        Assert.Null(reference.Data);
        Assert.Contains("'data' section", Assert.Throws<ConfigException>(() => TrainingJobSpecs.FromConfig(reference, ranks: 1)).Message);
    }

    [Fact]
    public void SyntheticLatentsMustSayHowMany()
    {
        var text = TinyConfigWithout("  num_samples: 64\n");
        var error = Assert.Throws<ConfigException>(() => RaeConfig.Parse(text, "unsized.yaml"));
        Assert.Contains("num_samples", error.Message);
        Assert.Contains("synthetic-latents", error.Message);
    }

    [Fact]
    public void EpochsCountStepsOverTheConfiguredDataSet()
    {
        var config = RaeConfig.Parse(DiTTestJobs.TinyConfig, "tiny", ["training.max_steps=null", "training.epochs=3", "data.num_samples=40"]);
        var spec = TrainingJobSpecs.FromConfig(config, ranks: 1);
        // 40 samples, global batch 8: 5 steps per epoch (last partial batch dropped).
        Assert.Equal(15, spec.Steps);
        Assert.Equal(4 * 5, spec.CheckpointInterval);
        Assert.Equal(1.0, spec.GradientClip);
    }

    [Fact]
    public void TheConfigurationTravelsCanonicallyWithItsHash()
    {
        var config = RaeConfig.Parse(DiTTestJobs.TinyConfig, "tiny", ["training.optimizer.lr=0.004"]);
        var spec = TrainingJobSpecs.FromConfig(config, ranks: 2);
        var travelled = spec.Config!;
        Assert.Equal(config.ToYaml(), travelled.Yaml);
        Assert.Equal(JobConfiguration.HashOf(travelled.Yaml), travelled.Sha256);
        var parsed = travelled.Parse();
        Assert.Equal(0.004, parsed.Training!.Optimizer.Lr);
        Assert.Equal(travelled.Yaml, parsed.ToYaml());

        var tampered = travelled with { Yaml = travelled.Yaml.Replace("0.004", "0.005", StringComparison.Ordinal) };
        Assert.Contains("does not match its SHA-256", Assert.Throws<RaeJobException>(() => tampered.Parse()).Message);
    }

    [Fact]
    public void ASamplingSpecDefaultsToTheSamplingWorkload()
    {
        Assert.Equal("rae", new SamplingJobSpec().Workload);
        Assert.Equal(SamplingJobSpec.RaeWorkload, SamplingJobSpecs.FromTrainingJob("train-1").Workload);
    }
}

/// <summary>The registry checks the configuration itself, whatever the client did.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RegistryConfigurationAuthorityTests(ClusterFixture fixture)
{
    [Fact]
    public async Task ATrainingJobWithoutADataSourceIsRefusedByTheRegistryWithTheSectionNamed()
    {
        const string data = "data:\n  source: synthetic-latents\n  num_samples: 64\n  seed: 3\n";
        var text = (DiTTestJobs.TinyConfig + "\n").Replace(data, "", StringComparison.Ordinal);
        Assert.DoesNotContain("synthetic-latents", text);
        // Built by hand, past the client's builder: only the registry's own check stands in the way.
        var spec = DiTTestJobs.Spec(ranks: 1) with { Config = JobConfiguration.From(RaeConfig.Parse(text, "no-data.yaml")) };
        var registry = fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var before = (await registry.List()).Count;
        var error = await Assert.ThrowsAsync<RaeJobException>(() => registry.SubmitTraining(spec));
        Assert.Contains("'data' section", error.Message);
        Assert.Equal(before, (await registry.List()).Count);
    }
}
