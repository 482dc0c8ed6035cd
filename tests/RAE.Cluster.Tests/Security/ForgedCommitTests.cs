using RAE.Cluster.Tests.Checkpoints;
using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;

namespace RAE.Cluster.Tests.Security;

/// <summary>
/// A caller that commits a checkpoint naming another job's payload (or any blob outside its own folder) is refused, so
/// retention can never delete data that is not the job's own.
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class ForgedCommitTests(FileSystemStorageCluster cluster)
{
    [Fact]
    public async Task CommitNamingAnotherJobsPayloadIsRefusedAndRetentionDeletesNothingOfThatJob()
    {
        var victim = "train-victim-" + Guid.NewGuid().ToString("N")[..8];
        var attacker = "train-forger-" + Guid.NewGuid().ToString("N")[..8];
        var victimCheckpoint = await cluster.Payloads.WriteAsync(victim, 5, [5, 5, 5], 0.5);
        await cluster.Grains.GetGrain<ICheckpointStoreGrain>(victim).Commit(victimCheckpoint, CheckpointRetentionPolicy.KeepAll);

        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(attacker);
        var own = await cluster.Payloads.WriteAsync(attacker, 1, [1], 0.9);
        await catalog.Commit(own, new CheckpointRetentionPolicy { KeepLast = 1 });

        string[] forgedLocations =
        [
            victimCheckpoint.Location,
            $"checkpoints/{attacker}/../{victim}/step-000000005.ckpt",
            $"checkpoints/{attacker}/nested/{victim}.ckpt",
            "samples/some-job/units/000000.safetensors",
            $"checkpoints/{attacker}",
        ];
        foreach (var location in forgedLocations)
        {
            var forged = victimCheckpoint with { JobId = attacker, Step = 0, Location = location };
            var error = await Assert.ThrowsAsync<RaeJobException>(() => catalog.Commit(forged, new CheckpointRetentionPolicy { KeepLast = 1 }));
            Assert.Contains("not one of the job's own checkpoint names", error.Message);
            Assert.Contains($"checkpoints/{attacker}/", error.Message);
        }

        // A newer own checkpoint with keep-last 1 retires everything older that the catalog lists: only the job's own step 1.
        await catalog.Commit(await cluster.Payloads.WriteAsync(attacker, 2, [2], 0.8), new CheckpointRetentionPolicy { KeepLast = 1 });
        Assert.Equal([2L], (await catalog.List()).Select(c => c.Step));
        Assert.True(await cluster.Store.Inner.ExistsAsync(victimCheckpoint.Location), "the victim's payload was deleted");
        Assert.Equal([5L], (await cluster.Grains.GetGrain<ICheckpointStoreGrain>(victim).List()).Select(c => c.Step));
        Assert.Equal(victimCheckpoint.Sha256, (await cluster.Grains.GetGrain<ICheckpointStoreGrain>(victim).Get(5)).Sha256);
    }

    [Fact]
    public async Task ATrainingJobWhoseIdCannotNameItsOwnCheckpointFolderIsRefusedBeforeItStarts()
    {
        var victim = "train-victim-" + Guid.NewGuid().ToString("N")[..8];
        var spec = TornCheckpointWriteTests.Spec(steps: 2, interval: 1, CheckpointRetentionPolicy.KeepAll);
        var error = await Assert.ThrowsAsync<RaeJobException>(() => cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(victim + "/nested").Start(spec));
        Assert.Contains("cannot name a blob folder: it contains '/'", error.Message);
        Assert.Empty(await cluster.Store.Inner.ListAsync(BlobCheckpointPayloadStore.PrefixOf(victim)).ToListAsync());
    }
}
