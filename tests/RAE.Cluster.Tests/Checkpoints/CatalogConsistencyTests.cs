using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// The checkpoint catalog answers only from what its storage holds, and never deletes a payload a pinned reader uses:
/// a catalog write that fails is not served from memory (a coordinator would restore, and a job end Completed, on a
/// checkpoint the next activation of the catalog does not list); a checkpoint that a newer group replaced keeps its
/// payload while a sampling job pins its step; dropping the last pin applies retention at once.
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class CatalogConsistencyTests(FileSystemStorageCluster cluster)
{
    private static readonly CheckpointRetentionPolicy KeepLast1 = new() { KeepLast = 1 };

    private static string NewJobId(string kind) => $"train-{kind}-{Guid.NewGuid().ToString("N")[..8]}";

    [Fact]
    public async Task ACommitWhoseCatalogWriteFailsIsNeitherListedNorRetiresTheCheckpointBeforeIt()
    {
        var jobId = NewJobId("catalog-write");
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        var first = await cluster.Payloads.WriteAsync(jobId, 4, [1, 2, 3], 1.0, generation: 1);
        await catalog.Commit(first, KeepLast1);
        var stateFolder = CatalogStateFolder(jobId);

        // The catalog's grain storage fails (its folder is replaced by a file) while step 8 is committed.
        var second = await cluster.Payloads.WriteAsync(jobId, 8, [4, 5, 6], 0.5, generation: 1);
        Directory.Move(stateFolder, stateFolder + "-away");
        await File.WriteAllTextAsync(stateFolder, "not a folder");
        try
        {
            await Assert.ThrowsAnyAsync<Exception>(() => catalog.Commit(second, KeepLast1));
        }
        finally
        {
            File.Delete(stateFolder);
            Directory.Move(stateFolder + "-away", stateFolder);
        }

        Assert.Equal([first], await catalog.List());
        Assert.Equal(first, await catalog.Latest());
        Assert.True(await cluster.Store.Inner.ExistsAsync(first.Location), "retention must not delete the payload before a commit that did not happen");

        // Storage back: the same commit goes through and retention takes the older one.
        await catalog.Commit(second, KeepLast1);
        Assert.Equal([second], await catalog.List());
        Assert.False(await cluster.Store.Inner.ExistsAsync(first.Location));
    }

    [Fact]
    public async Task ACheckpointReplacedWhileItsStepIsPinnedKeepsItsPayloadUntilThePinIsDropped()
    {
        var jobId = NewJobId("pin-replace");
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        var older = await cluster.Payloads.WriteAsync(jobId, 4, [1, 1, 1], 1.0, generation: 1);
        await catalog.Commit(older, KeepLast1);
        await catalog.Pin(4, "sample-reader");

        // A newer group restored an earlier state and redid step 4, then went on to step 8.
        var redone = await cluster.Payloads.WriteAsync(jobId, 4, [2, 2, 2], 1.0, generation: 2);
        await catalog.Commit(redone, KeepLast1);
        Assert.Equal([redone], await catalog.List());
        Assert.Equal(new byte[] { 1, 1, 1 }, await cluster.Payloads.ReadAsync(older));
        var later = await cluster.Payloads.WriteAsync(jobId, 8, [3, 3, 3], 0.5, generation: 2);
        await catalog.Commit(later, KeepLast1);
        Assert.Equal([redone, later], await catalog.List());
        Assert.True(await cluster.Store.Inner.ExistsAsync(older.Location), "the pinned reader's payload must stay while the pin holds");

        // The reader ends: retention applies at once (the job may never commit again), the replaced payload goes too.
        await catalog.Unpin("sample-reader");
        Assert.Equal([later], await catalog.List());
        Assert.False(await cluster.Store.Inner.ExistsAsync(older.Location));
        Assert.False(await cluster.Store.Inner.ExistsAsync(redone.Location));
        Assert.True(await cluster.Store.Inner.ExistsAsync(later.Location));
    }

    /// <summary>The silo's file grain storage keeps one folder per grain type; the catalog's holds the job's state file.</summary>
    private string CatalogStateFolder(string jobId)
    {
        var key = jobId[(jobId.LastIndexOf('-') + 1)..];
        var file = Directory.GetFiles(Path.Combine(cluster.DataFolder, "grain-state"), "checkpoints-*.state", SearchOption.AllDirectories)
            .Single(path => Path.GetFileName(path).Contains(key, StringComparison.Ordinal));
        return Path.GetDirectoryName(file)!;
    }
}
