using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Scheduling;

/// <summary>A cluster that starts with one silo (one device); tests add silos and stop them again.</summary>
public sealed class OneSiloClusterFixture : IAsyncLifetime
{
    public ClusterFixture Cluster { get; } = new(silos: 1);

    public Task InitializeAsync() => Cluster.InitializeAsync();

    public Task DisposeAsync() => Cluster.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class OneSiloClusterCollection : ICollectionFixture<OneSiloClusterFixture>
{
    public const string Name = "cluster that starts with one silo";
}

[Collection(OneSiloClusterCollection.Name)]
public sealed class ElasticGrowthTests(OneSiloClusterFixture one)
{
    private ClusterFixture Fixture => one.Cluster;

    private IJobRegistryGrain Registry => Fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task AJobThatGrowsFromOneToTwoRanksWhenASiloJoinsHasTheLossCurveOfAOneRankRun()
    {
        const int steps = 40;
        var elastic = SchedulingTests.Spec(ranks: 2, steps, TimeSpan.FromMilliseconds(100), globalBatch: 16) with { MinRanks = 1 };
        var reference = await Registry.SubmitTraining(elastic with { Ranks = 1, MinRanks = null, TinyMlp = new TinyMlpOptions() });
        Assert.Equal(JobState.Completed, (await Fixture.WaitForEndAsync(reference)).State);

        var jobId = await Registry.SubmitTraining(elastic);
        var coordinator = Fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        await SchedulingTests.WaitUntilAsync(async () => (await coordinator.GetStatus()).Step >= 3, "the job runs on the one device");
        Assert.Single((await coordinator.GetStatus()).Ranks);
        var joined = await Fixture.Cluster.StartAdditionalSiloAsync();
        try
        {
            var status = await Fixture.WaitForEndAsync(jobId);
            Assert.True(status.State == JobState.Completed, $"{status.State}: {status.FailureReason}");
            Assert.Equal(2, status.Ranks.Count);
            Assert.Equal(0, status.Recoveries);

            var grown = await coordinator.GetMetrics(0);
            var alone = await Fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(reference).GetMetrics(0);
            Assert.Equal(Enumerable.Range(1, steps).Select(s => (long)s), grown.Select(m => m.Step));
            Assert.Equal(1, grown[0].Ranks);
            Assert.Equal(2, grown[^1].Ranks);
            var firstOnTwo = grown.First(m => m.Ranks == 2).Step;
            Assert.True(firstOnTwo < steps, "the job grew before its last step");
            Assert.True((firstOnTwo - 1) % elastic.CheckpointInterval == 0, $"the job grew after step {firstOnTwo - 1}, not at a checkpoint");
            foreach (var (mine, theirs) in grown.Zip(alone))
                Assert.True(Math.Abs(mine.Loss - theirs.Loss) <= 1e-5 * Math.Abs(theirs.Loss),
                    $"step {mine.Step} on {mine.Ranks} rank(s): loss {mine.Loss} differs from the 1-rank run's {theirs.Loss}");
            Assert.True(alone[^1].Loss < alone[0].Loss, "training must move the loss, or the comparison proves little");
        }
        finally
        {
            await Fixture.Cluster.StopSiloAsync(joined);
        }
    }
}
