using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>Retention never deletes a checkpoint that a sampling job has pinned; the pin's end lets it go.</summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class CheckpointPinTests(FileSystemStorageCluster cluster)
{
    [Fact]
    public async Task APinnedCheckpointSurvivesRetentionUntilUnpinned()
    {
        var jobId = "train-pins-" + Guid.NewGuid().ToString("N")[..8];
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        var keepLast = new CheckpointRetentionPolicy { KeepLast = 1 };
        Task Commit(long step) => catalog.Commit(
            new CheckpointInfo(jobId, step, $"checkpoints/{jobId}/step-{step:D9}.ckpt", 10, "00", 1.0 / step, DateTimeOffset.UtcNow), keepLast);

        await Commit(1);
        await catalog.Pin(1, "sample-a");
        await Commit(2);
        await Commit(3);
        Assert.Equal([1L, 3L], (await catalog.List()).Select(c => c.Step));

        await catalog.Unpin("sample-a");
        await Commit(4);
        Assert.Equal([4L], (await catalog.List()).Select(c => c.Step));
        await Assert.ThrowsAsync<RaeJobException>(() => catalog.Pin(1, "sample-b"));
    }
}
