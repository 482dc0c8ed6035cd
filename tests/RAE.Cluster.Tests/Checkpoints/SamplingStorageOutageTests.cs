using RAE.Cluster.Tests.Sampling;
using RAE.GrainInterfaces;
using RAE.Grains.Sampling;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// Blob storage becomes unreachable while a sampling job writes its units (from unit 2 on, on one worker): a lasting
/// outage fails the job with the storage reason after the unit retries and keeps the finished units, which a resume
/// does not redo; a short one is ridden out.
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class SamplingStorageOutageTests(FileSystemStorageCluster cluster)
{
    private readonly SamplingTestFiles _files = SamplingTestFiles.Instance;

    private static (string JobId, Func<string, bool> Scope, Func<string, bool> Trigger) NewJob()
    {
        var jobId = "sample-outage-" + Guid.NewGuid().ToString("N")[..8];
        return (jobId, path => path.StartsWith($"samples/{jobId}/", StringComparison.Ordinal),
            path => path == $"samples/{jobId}/units/000002.safetensors");
    }

    private async Task<SamplingJobStatus> WaitForEndAsync(string jobId)
    {
        var job = cluster.Grains.GetGrain<ISamplingJobGrain>(jobId);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (true)
        {
            var status = await job.GetStatus();
            if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return status;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Sampling job {jobId} is still {status.State} ({status.UnitsDone}/{status.UnitsTotal} units).");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task LastingOutageFailsTheJobWithTheStorageReasonAndAResumeKeepsTheFinishedUnits()
    {
        var (jobId, scope, trigger) = NewJob();
        using var executions = new UnitExecutionCounter();
        var outage = cluster.Store.FailFrom(scope, trigger);
        var job = cluster.Grains.GetGrain<ISamplingJobGrain>(jobId);
        await job.Start(_files.Spec(samples: 8, unitSize: 2) with { MaxWorkers = 1 });
        var failed = await WaitForEndAsync(jobId);

        Assert.Equal(JobState.Failed, failed.State);
        Assert.Contains($"unit 2 failed {SamplingJobGrain.MaxUnitAttempts} times", failed.FailureReason);
        Assert.Contains("BlobStoreUnavailableException", failed.FailureReason);
        Assert.Contains("injected outage (storage switched off by the test)", failed.FailureReason);
        Assert.True(outage.Failed >= SamplingJobGrain.MaxUnitAttempts, $"only {outage.Failed} storage operations failed");
        Assert.Equal(2, failed.UnitsDone);

        outage.Dispose();
        foreach (var unit in new[] { 0, 1 })
            Assert.True(await cluster.Store.Inner.ExistsAsync($"samples/{jobId}/units/{unit:D6}.safetensors"), $"finished unit {unit} was lost");
        await job.Resume();
        var resumed = await WaitForEndAsync(jobId);
        Assert.True(resumed.State == JobState.Completed, $"resumed job ended {resumed.State}: {resumed.FailureReason}");
        Assert.Equal(1, executions.Count(jobId, 0));
        Assert.Equal(1, executions.Count(jobId, 1));
        Assert.True(await cluster.Store.Inner.ExistsAsync(resumed.OutputLocation!));
    }

    [Fact]
    public async Task OutageShorterThanTheUnitRetriesIsRiddenOut()
    {
        var (jobId, scope, trigger) = NewJob();
        using var outage = cluster.Store.FailFrom(scope, trigger, failures: SamplingJobGrain.MaxUnitAttempts - 1);
        await cluster.Grains.GetGrain<ISamplingJobGrain>(jobId)
            .Start(_files.Spec(samples: 8, unitSize: 2) with { MaxWorkers = 1 });
        var status = await WaitForEndAsync(jobId);
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(SamplingJobGrain.MaxUnitAttempts - 1, outage.Failed);
        Assert.Equal(4, status.UnitsDone);
    }
}
