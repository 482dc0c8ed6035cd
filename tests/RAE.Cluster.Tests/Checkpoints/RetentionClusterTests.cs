using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>The retention policy applied by the catalog grain: exactly the expected steps stay listed and stored.</summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class RetentionClusterTests(FileSystemStorageCluster cluster)
{
    private async Task<List<long>> StoredStepsAsync(string jobId) =>
        await cluster.Store.Inner.ListAsync(BlobCheckpointPayloadStore.PrefixOf(jobId))
            .Select(blob => long.Parse(blob.Path.Split("/step-")[1][..9], System.Globalization.CultureInfo.InvariantCulture)).ToListAsync();

    [Fact]
    public async Task TrainingJobKeepsTheLastCheckpointsAndTheMilestonesOfItsSettings()
    {
        var retention = new CheckpointRetentionPolicy { KeepLast = 2, KeepEvery = 4 };
        var jobId = await cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey)
            .SubmitTraining(TornCheckpointWriteTests.Spec(steps: 10, interval: 1, retention));
        var status = await cluster.WaitForEndAsync(jobId);
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");

        long[] expected = [4, 8, 9, 10];
        Assert.Equal(expected, (await cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List()).Select(c => c.Step));
        Assert.Equal(expected, await StoredStepsAsync(jobId));
    }

    [Fact]
    public async Task CommitsKeepTheBestByLossTheMilestonesTheLastAndNothingElse()
    {
        var jobId = "train-retention-" + Guid.NewGuid().ToString("N")[..8];
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        var policy = new CheckpointRetentionPolicy { KeepLast = 2, KeepEvery = 5, KeepBest = 1 };
        double[] losses = [0.9, 0.8, 0.15, 0.6, 0.5, 0.4, 0.45, 0.3, 0.35, 0.33, 0.32, 0.31];
        for (var step = 1; step <= losses.Length; step++)
        {
            var checkpoint = await cluster.Payloads.WriteAsync(jobId, step, [(byte)step, 1, 2, 3], losses[step - 1]);
            await catalog.Commit(checkpoint, policy);
        }

        long[] expected = [3, 5, 10, 11, 12];
        Assert.Equal(expected, (await catalog.List()).Select(c => c.Step));
        Assert.Equal(expected, await StoredStepsAsync(jobId));
        Assert.Equal(12, (await catalog.Latest())!.Step);

        var orphan = await cluster.Payloads.WriteAsync(jobId, 13, [13], 0.1);
        var invalid = await Assert.ThrowsAsync<RaeJobException>(() => catalog.Commit(orphan, new CheckpointRetentionPolicy { KeepLast = -1 }));
        Assert.Contains("training.keep_last must be 0 (off) or positive", invalid.Message);
        Assert.Equal(expected, (await catalog.List()).Select(c => c.Step));
    }

    [Fact]
    public async Task JobWithABadRetentionSettingIsRejectedAtSubmission()
    {
        var registry = cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var spec = TornCheckpointWriteTests.Spec(steps: 2, interval: 1, new CheckpointRetentionPolicy { KeepBest = -3 });
        var error = await Assert.ThrowsAsync<RaeJobException>(() => registry.SubmitTraining(spec));
        Assert.Contains("training.keep_best must be 0 (off) or positive, got -3", error.Message);
    }
}
