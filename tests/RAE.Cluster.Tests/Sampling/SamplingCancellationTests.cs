using RAE.Cluster.Tests.Workers;
using RAE.GrainInterfaces;
using RAE.Grains.Sampling;

namespace RAE.Cluster.Tests.Sampling;

/// <summary>
/// Cancelling a sampling job reaches the unit its worker is running: the unit stops between sampler steps, writes nothing,
/// and the worker takes the next job's unit.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class SamplingCancellationTests(ClusterFixture fixture)
{
    [Fact]
    public async Task CancellingAJobStopsItsRunningUnitWhichWritesNothingAndFreesTheWorker()
    {
        var files = SamplingTestFiles.Instance;
        using var starts = new UnitStartListener(SamplingTelemetry.MeterName, "rae.sampling.unit_starts");
        var jobId = "sample-cancel-" + Guid.NewGuid().ToString("N")[..10];
        var job = fixture.Grains.GetGrain<ISamplingJobGrain>(jobId);
        // 20 000 Euler steps on ddt_tiny: one unit that would run for minutes unless the cancel reaches it. One worker (the
        // same for both jobs: workers are chosen in a fixed order), so the next job needs the very worker it held.
        await job.Start(files.Spec(samples: 2, unitSize: 2, decode: false, steps: 20_000) with { MaxWorkers = 1 });
        await starts.WaitForAsync(jobId);

        await job.Cancel();

        var cancelled = await job.GetStatus();
        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.Null(cancelled.FailureReason);
        Assert.Equal(0, cancelled.UnitsDone);

        var nextId = "sample-after-cancel-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Grains.GetGrain<ISamplingJobGrain>(nextId).Start(files.Spec(samples: 2, unitSize: 2, decode: false) with { MaxWorkers = 1 });
        var next = await SamplingTestFiles.WaitForEndAsync(fixture, nextId, TimeSpan.FromSeconds(90));
        Assert.True(next.State == JobState.Completed, $"the job after the cancelled one ended {next.State}: {next.FailureReason}");

        // The worker has run the next job's unit, so the cancelled unit is over: it left no file at all.
        var blobs = SamplingTestFiles.Blobs(fixture);
        Assert.False(await blobs.ExistsAsync($"samples/{jobId}/units/000000.safetensors"));
        Assert.Empty(await blobs.ListAsync($"samples/{jobId}/").ToListAsync());
        Assert.Equal(JobState.Cancelled, (await job.GetStatus()).State);
    }
}
