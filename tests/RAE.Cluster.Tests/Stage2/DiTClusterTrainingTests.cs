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
        Assert.Equal(5e-3, metrics[2].LearningRate, 12);
        // Cosine decay from 5e-3 (after step 2) towards 1e-3 at step 40: step 30 is the 28th of 38 decay steps.
        Assert.Equal(1e-3 + 4e-3 * 0.5 * (1 + Math.Cos(Math.PI * 27 / 38)), metrics[^1].LearningRate, 12);
        // The per-step loss is noisy (random t per sample), so compare the means of the first and last 10 steps: from the
        // zero-output start (about 2.25) the tiny model gets to about 1.95 in 30 steps; demand at least a 6% fall.
        var first = metrics.Take(10).Average(m => m.Loss);
        var last = metrics.TakeLast(10).Average(m => m.Loss);
        Assert.True(last < 0.94 * first, $"mean loss of the last 10 steps {last:F4} should be clearly below that of the first 10 {first:F4}");

        // The cluster ran the same computation as the in-process driver: the same loss curve, to float tolerance.
        var local = Train(spec, Steps);
        for (var step = 0; step < Steps; step++) Assert.Equal(local.Losses[step], metrics[step].Loss, 4);
    }
}
