using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Cluster.Tests.Client;
using RAE.GrainInterfaces;
using RAE.Grains.Training;

namespace RAE.Cluster.Tests.Scheduling;

public sealed class RankRangeTests
{
    private static string TinyConfig => Cli.RepositoryFile("configs/tiny/stage2-ddt-tiny.yaml");

    [Theory]
    [InlineData("1", 1, 1)]
    [InlineData("3", 3, 3)]
    [InlineData("1..4", 1, 4)]
    [InlineData("2..2", 2, 2)]
    public void RanksParseAsANumberOrARange(string text, int min, int max) => Assert.Equal(new RankRange(min, max), RankRange.Parse(text));

    [Theory]
    [InlineData("0", "--ranks must be at least 1, got 0")]
    [InlineData("0..2", "--ranks must be at least 1, got 0")]
    [InlineData("4..1", "MIN (4) is larger than MAX (1)")]
    [InlineData("two", "give N or MIN..MAX")]
    [InlineData("1..", "give N or MIN..MAX")]
    [InlineData("..4", "give N or MIN..MAX")]
    [InlineData("1...4", "give N or MIN..MAX")]
    [InlineData("1..2..3", "give N or MIN..MAX")]
    [InlineData("-1", "give N or MIN..MAX")]
    [InlineData("99999999999", "is too large")]
    public void BadRangesNameTheProblem(string text, string problem)
    {
        var error = Assert.Throws<UsageException>(() => RankRange.Parse(text));
        Assert.Contains(problem, error.Message);
        Assert.Contains("--ranks", error.Message);
    }

    [Fact]
    public async Task TrainWithABadRangeExitsTwoBeforeConnecting()
    {
        var (exitCode, _, error) = await Cli.RunAsync("train", TinyConfig, "--ranks", "4..1");
        Assert.Equal(2, exitCode);
        Assert.Contains("MIN (4) is larger than MAX (1)", error);
    }

    [Fact]
    public void ARangeSetsTheLeastAndMostRanksAndTheGlobalBatchOfTheMost()
    {
        var config = JobSpecFactory.LoadConfig(TinyConfig, ["training.global_batch_size=16"]);
        var spec = JobSpecFactory.Training(config, "dit-dh", new RankRange(1, 4));
        Assert.Equal((1, 4, 16), (spec.MinimumRanks, spec.Ranks, spec.GlobalBatchSize));
        Assert.Equal("1..4", spec.DescribeRanks());
        Assert.Equal([1, 2, 4], TrainingCoordinatorGrain.WorldSizes(spec, spec.MinimumRanks));
        var exact = JobSpecFactory.Training(config, "dit-dh", RankRange.Exactly(2));
        Assert.Equal((2, 2, null), (exact.MinimumRanks, exact.Ranks, exact.MinRanks));

        var uneven = Assert.Throws<UsageException>(() => JobSpecFactory.Training(config, "dit-dh", new RankRange(3, 4)));
        Assert.Contains("--ranks 3..4: the global batch 16 does not split over 3 rank(s)", uneven.Message);
    }

    [Fact]
    public void TheClusterRefusesAMinimumOutsideTheRangeOrOneTheBatchDoesNotSplitOver()
    {
        var spec = new TrainingJobSpec { Ranks = 2, GlobalBatchSize = 8 };
        var tooMany = Assert.Throws<RaeJobException>(() => TrainingSpecValidator.Validate(spec with { MinRanks = 3 }, [spec.Workload]));
        Assert.Contains("MinRanks must be between 1 and Ranks (2), got 3", tooMany.Message);
        var zero = Assert.Throws<RaeJobException>(() => TrainingSpecValidator.Validate(spec with { MinRanks = 0 }, [spec.Workload]));
        Assert.Contains("MinRanks must be between 1 and Ranks (2), got 0", zero.Message);
        var uneven = Assert.Throws<RaeJobException>(() => TrainingSpecValidator.Validate(new TrainingJobSpec { Ranks = 4, MinRanks = 3, GlobalBatchSize = 8 }, [spec.Workload]));
        Assert.Contains("GlobalBatchSize 8 is not a multiple of MinRanks x GradientAccumulation = 3", uneven.Message);
        TrainingSpecValidator.Validate(spec with { MinRanks = 1 }, [spec.Workload]);
    }
}
