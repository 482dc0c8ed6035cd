using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// A cancel reaches the step that is running: the worker stops inside it (its step delay here is far longer than the
/// test's deadline), the job ends Cancelled, no checkpoint of the partial step is committed and the device is released.
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class CancelRunningStepTests(FileSystemStorageCluster cluster)
{
    [Fact]
    public async Task CancelStopsALongRunningStepAndCommitsNothing()
    {
        var registry = cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var device = cluster.Grains.GetGrain<IRankGrain>(SiloBoundKey.Rank(cluster.Cluster.Primary!.SiloAddress, "cpu"));
        var spec = TornCheckpointWriteTests.Spec(steps: 3, interval: 1) with { TinyMlp = new TinyMlpOptions { StepDelay = TimeSpan.FromMinutes(20) } };
        var jobId = await registry.SubmitTraining(spec);
        var coordinator = cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        // Running: the group is formed and step 1 is under way (the device answers nothing else until that step ends).
        while ((await coordinator.GetStatus()).State != JobState.Running) await Task.Delay(50);
        await Task.Delay(200);

        await registry.Cancel(jobId);
        // Without the cancellation passing into the step, the job would still be in step 1 for another 20 minutes.
        var status = await cluster.WaitForEndAsync(jobId, TimeSpan.FromSeconds(60));

        Assert.Equal(JobState.Cancelled, status.State);
        Assert.Equal(0, status.Step);
        Assert.Null(status.LastCheckpointStep);
        Assert.Empty(await cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List());
        Assert.Empty(await coordinator.GetMetrics(0));
        Assert.DoesNotContain(jobId, await device.HeldJobs());
    }
}
