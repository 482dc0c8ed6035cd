using RAE.GrainInterfaces;
using static RAE.Cluster.Tests.Stage2.DiTTestJobs;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>The DiT^DH workload through the 3-silo TestCluster: the coordinator, rank grains and all-reduce of the real system.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DiTClusterTrainingTests(ClusterFixture fixture)
{
    private const int Steps = 30;

    [Fact]
    public async Task TwoRankDiTJobRunsToCompletionAndItsLossFalls()
    {
        var spec = Spec(ranks: 2, globalBatch: 16, steps: Steps) with { CheckpointInterval = 15, CollectiveTimeout = TimeSpan.FromSeconds(30) };
        var registry = fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var jobId = await registry.SubmitTraining(spec);
        var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(120));

        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(Steps, status.Step);
        Assert.Equal(2, status.Ranks.Count);
        Assert.Equal(Steps, status.LastCheckpointStep);

        var metrics = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, Steps).Select(s => (long)s), metrics.Select(m => m.Step));
        Assert.All(metrics, m => Assert.True(double.IsFinite(m.Loss) && m.Loss > 0, $"step {m.Step} loss {m.Loss}"));
        Assert.Equal(2.5e-3, metrics[0].LearningRate, 12); // warm-up from zero: step 1 of 2 at base_lr 5e-3
        var first = metrics.Take(5).Average(m => m.Loss);
        var last = metrics.TakeLast(5).Average(m => m.Loss);
        Assert.True(last < 0.85 * first, $"mean loss of the last 5 steps {last:F4} should be well below that of the first 5 {first:F4}");

        // The cluster ran the same computation as the in-process driver: the same loss curve, to float tolerance.
        var local = Train(spec, Steps);
        for (var step = 0; step < Steps; step++) Assert.Equal(local.Losses[step], metrics[step].Loss, 4);
    }
}
