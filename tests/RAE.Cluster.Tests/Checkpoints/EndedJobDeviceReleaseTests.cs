using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>A job that ends Failed or Cancelled lets go of its replica (worker and thread) on every device it used.</summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class EndedJobDeviceReleaseTests(FileSystemStorageCluster cluster)
{
    private IJobRegistryGrain Registry => cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    private IRankGrain OnlyDevice => cluster.Grains.GetGrain<IRankGrain>(SiloBoundKey.Rank(cluster.Cluster.Primary!.SiloAddress, "cpu"));

    [Fact]
    public async Task AJobThatRunsOutOfAttemptsReleasesItsDevice()
    {
        // Every checkpoint operation fails from the step-4 save on: the save, then each restore of step 2, until the limit.
        using var outage = cluster.Store.FailFrom(
            path => path.StartsWith(BlobCheckpointPayloadStore.Root + "/", StringComparison.Ordinal),
            path => path.Contains("/step-000000004.", StringComparison.Ordinal));
        var jobId = await Registry.SubmitTraining(TornCheckpointWriteTests.Spec(steps: 6, interval: 2) with { MaxAttempts = 2 });
        var status = await cluster.WaitForEndAsync(jobId);

        Assert.Equal(JobState.Failed, status.State);
        Assert.Contains("gave up after 2 failed attempt(s)", status.FailureReason);
        Assert.Contains("Checkpoint storage is unavailable", status.FailureReason);
        Assert.Equal(2, outage.Failed);
        Assert.DoesNotContain(jobId, await OnlyDevice.HeldJobs());
    }

    [Fact]
    public async Task ACancelledJobReleasesItsDevice()
    {
        var spec = TornCheckpointWriteTests.Spec(steps: 1000, interval: 0) with { TinyMlp = new TinyMlpOptions { StepDelay = TimeSpan.FromMilliseconds(100) } };
        var jobId = await Registry.SubmitTraining(spec);
        var coordinator = cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        while ((await coordinator.GetStatus()).Step < 2) await Task.Delay(50);
        Assert.Contains(jobId, await OnlyDevice.HeldJobs());

        await Registry.Cancel(jobId);
        var status = await cluster.WaitForEndAsync(jobId);

        Assert.Equal(JobState.Cancelled, status.State);
        Assert.DoesNotContain(jobId, await OnlyDevice.HeldJobs());
    }
}
