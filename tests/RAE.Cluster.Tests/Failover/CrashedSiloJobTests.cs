using RAE.GrainInterfaces;
using RAE.Grains.Workers;

namespace RAE.Cluster.Tests.Failover;

[CollectionDefinition(Name)]
public sealed class CrashingClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "three-silo cluster whose silos all crash";
}

/// <summary>
/// Every silo is killed at once while a job runs (as when a job crashes the processes that run it) and the cluster comes
/// back on the same storage: what the job's persisted state says decides what happens next, not what was in memory.
/// </summary>
[Collection(CrashingClusterCollection.Name)]
public sealed class CrashedSiloJobTests(ClusterFixture fixture)
{
    private static TrainingJobSpec LongJob(TimeSpan stepDelay, int maxAttempts = TrainingJobSpec.DefaultMaxAttempts) => new()
    {
        Workload = TinyMlpWorker.WorkloadName,
        Ranks = 1,
        GlobalBatchSize = 4,
        Steps = 10_000,
        Seed = 3,
        MaxAttempts = maxAttempts,
        TinyMlp = new TinyMlpOptions { StepDelay = stepDelay },
    };

    private IJobRegistryGrain Registry => fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    private async Task<TrainingJobStatus> WaitForAsync(string jobId, Func<TrainingJobStatus, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var status = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetStatus();
            if (done(status)) return status;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Job {jobId} never got to {what}: it is {status.State} at step {status.Step}, group generation {status.GroupGeneration}, {status.FailedAttempts} failed attempt(s), last error {status.LastError}, failure {status.FailureReason}");
            await Task.Delay(100);
        }
    }

    /// <summary>The registry learns of an end that happens while the cluster forms at its next resume round.</summary>
    private async Task<JobSummary> WaitForRegistryAsync(string jobId, JobState expected)
    {
        var deadline = DateTime.UtcNow + RAE.Silo.JobResumeService.Period * 4;
        while (true)
        {
            var summary = await Registry.Get(jobId);
            if (summary.State == expected || DateTime.UtcNow > deadline)
            {
                Assert.Equal(expected, summary.State);
                return summary;
            }
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task AJobWhoseSilosCrashAsOftenAsItsAttemptLimitEndsFailedWithTheLastError()
    {
        // No checkpoint before the end: every crash strikes before the job made lasting progress.
        var jobId = await Registry.SubmitTraining(LongJob(TimeSpan.FromMilliseconds(30), maxAttempts: 2));
        var running = await WaitForAsync(jobId, s => s.State == JobState.Running && s.Step >= 2, "its second step");

        await fixture.CrashAndRestartAsync();
        var resumed = await WaitForAsync(jobId, s => s.GroupGeneration > running.GroupGeneration && s.State == JobState.Running && s.Step >= 1,
            "running again after the first crash");
        Assert.Equal(JobState.Running, resumed.State);

        await fixture.CrashAndRestartAsync();
        var status = await WaitForAsync(jobId, s => s.State is JobState.Failed or JobState.Completed or JobState.Cancelled, "an end after the second crash");

        Assert.Equal(JobState.Failed, status.State);
        Assert.Equal(2, status.FailedAttempts);
        Assert.NotNull(status.FailureReason);
        Assert.Contains("gave up after 2 failed attempt(s)", status.FailureReason);
        Assert.Contains("silo crashed or stopped", status.FailureReason);
        var listed = await WaitForRegistryAsync(jobId, JobState.Failed);
        Assert.Equal(status.FailureReason, listed.FailureReason);
    }

    [Fact]
    public async Task ACancelledJobStaysCancelledWhenItsSilosCrashBeforeTheRunNoticed()
    {
        // A step takes seconds, so the silos die while the cancelled run still waits for its step.
        var jobId = await Registry.SubmitTraining(LongJob(TimeSpan.FromSeconds(3)));
        await WaitForAsync(jobId, s => s.State == JobState.Running, "running");
        await Registry.Cancel(jobId);
        Assert.True((await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetStatus()).CancelRequested);

        await fixture.CrashAndRestartAsync();
        var status = await WaitForAsync(jobId, s => s.State is JobState.Failed or JobState.Completed or JobState.Cancelled, "an end after the crash");

        Assert.Equal(JobState.Cancelled, status.State);
        await WaitForRegistryAsync(jobId, JobState.Cancelled);
        // Nothing resumes it later either.
        await Task.Delay(RAE.Silo.JobResumeService.Period * 2);
        Assert.Equal(JobState.Cancelled, (await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetStatus()).State);
    }

    [Fact]
    public async Task ARestoreSkipsANewestCheckpointThatFailsItsChecksumForThePreviousOne()
    {
        var spec = LongJob(TimeSpan.FromMilliseconds(500)) with { Steps = 8, CheckpointInterval = 2, Retention = CheckpointRetentionPolicy.KeepAll };
        var jobId = await Registry.SubmitTraining(spec);
        await WaitForAsync(jobId, s => s.LastCheckpointStep >= 4, "its second checkpoint");
        var newest = (await fixture.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List())[^1];

        var corrupted = new List<string>();
        await fixture.CrashAndRestartAsync(whileDown: async () =>
        {
            // The newest listed payload and any written after it (committed or not before the kill) fail their checksums.
            var folder = Path.GetDirectoryName(Path.Combine(fixture.DataFolder, "blobs", newest.Location))!;
            foreach (var file in Directory.GetFiles(folder).Where(f => string.CompareOrdinal(Path.GetFileName(f), Path.GetFileName(newest.Location)) >= 0))
            {
                var bytes = await File.ReadAllBytesAsync(file);
                bytes[bytes.Length / 2] ^= 0x5A;
                await File.WriteAllBytesAsync(file, bytes);
                corrupted.Add(Path.GetFileName(file));
            }
        });
        Assert.Contains(Path.GetFileName(newest.Location), corrupted);
        var status = await WaitForAsync(jobId, s => s.State is JobState.Failed or JobState.Completed or JobState.Cancelled, "an end after the crash");

        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(newest.Step - spec.CheckpointInterval, status.RestoredFromStep);
        Assert.Equal(spec.Steps, status.Step);
    }
}
