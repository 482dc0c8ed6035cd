using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// Checkpoint blob names carry the writing group's generation: a stale writer (a rank of an older group, presumed dead)
/// neither overwrites a committed checkpoint's bytes nor gets its own commit accepted; checkpoints named before
/// generations existed stay readable and committable.
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class CheckpointGenerationTests(FileSystemStorageCluster cluster)
{
    private static readonly CheckpointRetentionPolicy KeepAll = CheckpointRetentionPolicy.KeepAll;

    [Fact]
    public async Task AStaleWritersCommitIsRefusedAndTheCommittedBytesStayUnchanged()
    {
        var jobId = "train-generations-" + Guid.NewGuid().ToString("N")[..8];
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        byte[] current = [3, 3, 3, 3];
        var committed = await cluster.Payloads.WriteAsync(jobId, 4, current, 0.5, generation: 3);
        Assert.Equal(BlobCheckpointPayloadStore.PathOf(jobId, 4, generation: 3), committed.Location);
        Assert.EndsWith("/step-000000004.g3.ckpt", committed.Location, StringComparison.Ordinal);
        await catalog.Commit(committed, KeepAll);

        // The old group's rank 0 wakes up and saves the same step: its bytes land beside the committed ones, not on them.
        var stale = await cluster.Payloads.WriteAsync(jobId, 4, [2, 2], 0.9, generation: 2);
        Assert.NotEqual(committed.Location, stale.Location);
        var refused = await Assert.ThrowsAsync<RaeJobException>(() => catalog.Commit(stale, KeepAll));
        Assert.Contains("stale writer", refused.Message);
        Assert.Contains("generation 2", refused.Message);
        var staleLater = await cluster.Payloads.WriteAsync(jobId, 8, [2], 0.9, generation: 2);
        await Assert.ThrowsAsync<RaeJobException>(() => catalog.Commit(staleLater, KeepAll));

        // Claiming the committed name with other bytes, or a name that is not the generation's, is refused too.
        var forged = committed with { Sha256 = staleLater.Sha256, SizeBytes = staleLater.SizeBytes };
        Assert.Contains("committed already", (await Assert.ThrowsAsync<RaeJobException>(() => catalog.Commit(forged, KeepAll))).Message);
        var misnamed = stale with { Generation = 5 };
        Assert.Contains("generation 5 writes", (await Assert.ThrowsAsync<RaeJobException>(() => catalog.Commit(misnamed, KeepAll))).Message);

        Assert.Equal([committed], await catalog.List());
        Assert.Equal(committed, await catalog.Latest());
        Assert.Equal(current, await cluster.Payloads.ReadAsync(await catalog.Get(4)));
    }

    [Fact]
    public async Task ANewerGenerationReplacesTheStepItRedidAndOlderNamesStayReadable()
    {
        var jobId = "train-generations-" + Guid.NewGuid().ToString("N")[..8];
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        // Written before names carried a generation (generation 0): still committed, listed and read as before.
        var legacy = await cluster.Payloads.WriteAsync(jobId, 2, [1, 2], 0.7);
        Assert.EndsWith("/step-000000002.ckpt", legacy.Location, StringComparison.Ordinal);
        await catalog.Commit(legacy, KeepAll);
        Assert.Equal(new byte[] { 1, 2 }, await cluster.Payloads.ReadAsync(await catalog.Get(2)));

        var first = await cluster.Payloads.WriteAsync(jobId, 4, [4, 1], 0.6, generation: 1);
        await catalog.Commit(first, KeepAll);
        // Generation 2 restored step 2 and redid step 4: its checkpoint replaces generation 1's, whose blob goes.
        var redone = await cluster.Payloads.WriteAsync(jobId, 4, [4, 2], 0.6, generation: 2);
        await catalog.Commit(redone, KeepAll);

        Assert.Equal([legacy, redone], await catalog.List());
        Assert.Equal(new byte[] { 4, 2 }, await cluster.Payloads.ReadAsync(await catalog.Get(4)));
        Assert.False(await cluster.Store.Inner.ExistsAsync(first.Location), "the replaced generation's payload should be deleted");
        Assert.True(await cluster.Store.Inner.ExistsAsync(legacy.Location));
        // The same commit again (a retried call) is accepted and changes nothing.
        await catalog.Commit(redone, KeepAll);
        Assert.Equal([legacy, redone], await catalog.List());
    }
}
