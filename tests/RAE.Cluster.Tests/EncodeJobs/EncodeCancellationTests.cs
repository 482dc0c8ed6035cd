using RAE.Cluster.Tests.Sampling;
using RAE.Cluster.Tests.Workers;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.EncodeJobs;

namespace RAE.Cluster.Tests.EncodeJobs;

/// <summary>
/// Cancelling an encode job reaches the shard its encoder is encoding: the shard stops between encoder batches, writes
/// neither moments nor latents, and the encoder takes the next job's shard.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class EncodeCancellationTests(ClusterFixture fixture)
{
    [Fact]
    public async Task CancellingAJobStopsItsRunningShardWhichWritesNothingAndFreesTheEncoder()
    {
        using var starts = new UnitStartListener(EncodeTelemetry.MeterName, "rae.encode.shard_starts");
        // One shard of 300 images encoded one image per batch: long unless the cancel reaches it. One encoder (the same for
        // both jobs: encoders are chosen in a fixed order), so the next job needs the very encoder it held.
        var longDataset = await EncodeTestData.AddDatasetAsync(fixture.Grains, "encode-cancel", classes: 1, perClass: 300, shardSize: 300);
        var latents = longDataset + "-latents";
        var jobId = "encode-cancel-" + Guid.NewGuid().ToString("N")[..10];
        var job = fixture.Grains.GetGrain<IEncodeJobGrain>(jobId);
        await job.Start(EncodeTestData.Spec(longDataset, latents) with { BatchSize = 1, MaxWorkers = 1 });
        await starts.WaitForAsync(jobId);

        await job.Cancel();

        var cancelled = await job.GetStatus();
        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.Null(cancelled.FailureReason);
        Assert.Equal(0, cancelled.ShardsDone);
        // The resume service's call (every few seconds, from a list that can lag the cancel) leaves a cancelled job cancelled.
        await job.ContinueIfUnfinished();
        Assert.Equal(JobState.Cancelled, (await job.GetStatus()).State);

        var smallDataset = await EncodeTestData.AddDatasetAsync(fixture.Grains, "encode-after-cancel", classes: 2, perClass: 2, shardSize: 4);
        var nextId = "encode-after-cancel-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Grains.GetGrain<IEncodeJobGrain>(nextId).Start(EncodeTestData.Spec(smallDataset, smallDataset + "-latents") with { MaxWorkers = 1 });
        var next = await EncodeTestData.WaitForEndAsync(fixture.Grains, nextId, TimeSpan.FromSeconds(90));
        Assert.True(next.State == JobState.Completed, $"the job after the cancelled one ended {next.State}: {next.FailureReason}");

        // The encoder has run the next job's shard, so the cancelled shard is over: it left no moments and no latents.
        Assert.Empty(await SamplingTestFiles.Blobs(fixture).ListAsync(LatentBlobs.PrefixOf(latents)).ToListAsync());
        Assert.Equal(JobState.Cancelled, (await job.GetStatus()).State);
    }
}
