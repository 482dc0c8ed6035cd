using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Training;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// The blob store becomes unreachable in the middle of a training job (from its step-6 checkpoint on, every operation
/// on checkpoints fails as the store does once its own retries are spent). The coordinator retries by recovering from
/// the last committed checkpoint; a lasting outage ends the job Failed with the storage reason and loses nothing that
/// was committed, a short one is ridden out.
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class StorageOutageTests(FileSystemStorageCluster cluster)
{
    private static bool IsCheckpoint(string path) => path.StartsWith(BlobCheckpointPayloadStore.Root + "/", StringComparison.Ordinal);

    private static bool IsStep6(string path) => IsCheckpoint(path) && path.Contains("/step-000000006.", StringComparison.Ordinal);

    private IJobRegistryGrain Registry => cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task LastingOutageFailsTheJobWithTheStorageReasonAndKeepsWhatWasCommitted()
    {
        using var outage = cluster.Store.FailFrom(IsCheckpoint, IsStep6);
        var jobId = await Registry.SubmitTraining(TornCheckpointWriteTests.Spec(steps: 10, interval: 2));
        var status = await cluster.WaitForEndAsync(jobId);

        Assert.Equal(JobState.Failed, status.State);
        Assert.NotNull(status.FailureReason);
        Assert.Contains("Checkpoint storage is unavailable", status.FailureReason);
        Assert.Contains("injected outage (storage switched off by the test)", status.FailureReason);
        Assert.Contains(cluster.Store.Location, status.FailureReason);
        // The step-6 save, then one restore of step 4 per recovery attempt, until the coordinator gives up.
        Assert.Equal(TrainingCoordinatorGrain.MaxConsecutiveFailures, outage.Failed);
        Assert.Equal(4, status.LastCheckpointStep);
        var summary = await Registry.Get(jobId);
        Assert.Equal(JobState.Failed, summary.State);
        Assert.Equal(status.FailureReason, summary.FailureReason);

        // Storage back: everything committed before the outage is still listed and reads back intact.
        outage.Dispose();
        var committed = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List();
        Assert.Equal([2L, 4L], committed.Select(c => c.Step));
        foreach (var checkpoint in committed)
            Assert.Equal(checkpoint.SizeBytes, (await cluster.Payloads.ReadAsync(checkpoint)).LongLength);
    }

    [Fact]
    public async Task UnwritableFileSystemStoreFailsTheJobAfterTheStoresOwnRetries()
    {
        // No injection: the real store cannot stage a put once its staging folder is replaced by a file.
        var staging = Path.Combine(cluster.BlobRoot, ".staging");
        var spec = TornCheckpointWriteTests.Spec(steps: 10, interval: 2) with { TinyMlp = new TinyMlpOptions { StepDelay = TimeSpan.FromMilliseconds(250) } };
        var jobId = await Registry.SubmitTraining(spec);
        var coordinator = cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        while ((await coordinator.GetStatus()).LastCheckpointStep is null or < 4) await Task.Delay(20);
        Directory.Move(staging, staging + "-away");
        await File.WriteAllTextAsync(staging, "not a folder");
        TrainingJobStatus status;
        try
        {
            status = await cluster.WaitForEndAsync(jobId);
        }
        finally
        {
            File.Delete(staging);
            Directory.Move(staging + "-away", staging);
        }

        Assert.Equal(JobState.Failed, status.State);
        Assert.Contains("Checkpoint storage is unavailable", status.FailureReason);
        // The step's metrics segment is sealed before its checkpoint: either write may be the one that gave up.
        Assert.Matches($"put '(checkpoints/{jobId}/step-|jobs/{jobId}/metrics/segment-)", status.FailureReason);
        Assert.Contains("failed after 3 attempt(s)", status.FailureReason);
        Assert.Contains(cluster.Store.Location, status.FailureReason);
        var committed = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List();
        Assert.NotEmpty(committed);
        Assert.Equal(status.LastCheckpointStep, committed[^1].Step);
        Assert.Equal(Enumerable.Range(1, (int)committed[^1].Step / 2).Select(i => 2L * i), committed.Select(c => c.Step));
        foreach (var checkpoint in committed)
            Assert.Equal(checkpoint.SizeBytes, (await cluster.Payloads.ReadAsync(checkpoint)).LongLength);
    }

    [Fact]
    public async Task OutageShorterThanTheRetryWindowIsRiddenOut()
    {
        using var outage = cluster.Store.FailFrom(IsCheckpoint, IsStep6, failures: TrainingCoordinatorGrain.MaxConsecutiveFailures - 2);
        var spec = TornCheckpointWriteTests.Spec(steps: 10, interval: 2);
        var jobId = await Registry.SubmitTraining(spec);
        var status = await cluster.WaitForEndAsync(jobId);

        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(10, status.Step);
        Assert.Equal(TrainingCoordinatorGrain.MaxConsecutiveFailures - 2, outage.Failed);
        Assert.True(status.Recoveries >= 1, "the job should have recovered from the outage");
        Assert.Equal(4, status.RestoredFromStep);
        var committed = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List();
        Assert.Equal([2L, 4L, 6L, 8L, 10L], committed.Select(c => c.Step));

        var undisturbed = await Registry.SubmitTraining(spec);
        Assert.Equal(JobState.Completed, (await cluster.WaitForEndAsync(undisturbed)).State);
        var expected = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(undisturbed).Latest();
        Assert.Equal(TornCheckpointWriteTests.Parameters(spec, await cluster.Payloads.ReadAsync(expected!)),
            TornCheckpointWriteTests.Parameters(spec, await cluster.Payloads.ReadAsync(committed[^1])));
    }
}
