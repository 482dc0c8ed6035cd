using RAE.Configuration;
using RAE.GrainInterfaces;

namespace RAE.Models.Tests.Config;

/// <summary><c>data.source: latents</c> with <c>data.dataset</c>: parsed once, validated, and sizing the job's epochs.</summary>
public sealed class LatentDataConfigTests
{
    private const string Training = "training:\n  epochs: 3\n  global_batch_size: 8\n  checkpoint_interval: 2\nstage_2:\n  target: stage2.models.DDT.DiTwDDTHead\n";

    [Fact]
    public void LatentsSourceNamesItsDatasetAndSurvivesTheCanonicalForm()
    {
        var config = RaeConfig.Parse("data:\n  source: latents\n  dataset: fashion-latents\n  seed: 4\n", "data.yaml");
        Assert.Equal(DataSource.Latents, config.Data!.Source);
        Assert.Equal("fashion-latents", config.Data.Dataset);
        var again = RaeConfig.Parse(config.ToYaml(), "canonical");
        Assert.Equal(config.Data, again.Data);
    }

    [Theory]
    [InlineData("data:\n  source: latents\n", "data.dataset", "is required with source 'latents'")]
    [InlineData("data:\n  source: latents\n  dataset: Bad/Name\n", "data.dataset", "'Bad/Name' is not a dataset name")]
    [InlineData("data:\n  source: synthetic-latents\n  num_samples: 8\n  dataset: x\n", "data.dataset", "only used with source 'latents'")]
    [InlineData("data:\n  source: shards\n", "data.source", "latents")]
    public void BadDataSectionNamesTheKey(string yaml, string key, string message)
    {
        var error = Assert.Throws<ConfigException>(() => RaeConfig.Parse(yaml, "bad.yaml"));
        Assert.Equal(key, error.KeyPath);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void EpochsAndCheckpointIntervalAreCountedInStepsOfTheLatentDataset()
    {
        var config = RaeConfig.Parse(Training + "data:\n  source: latents\n  dataset: tiny\n", "train.yaml");
        var spec = TrainingJobSpecs.FromConfig(config, ranks: 2, latentDatasetSize: 43);
        Assert.Equal(3 * 5, spec.Steps);
        Assert.Equal(2 * 5, spec.CheckpointInterval);

        var unsized = Assert.Throws<ConfigException>(() => TrainingJobSpecs.FromConfig(config, ranks: 1));
        Assert.Equal("data.dataset", unsized.KeyPath);
        Assert.Contains("comes from its manifest", unsized.Message);
    }
}
