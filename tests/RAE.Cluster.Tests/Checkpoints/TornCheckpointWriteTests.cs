using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Workers;
using RAE.Cluster.Tests.Storage;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// A checkpoint whose upload dies half way (a writer process SIGKILLed mid-put) never looks committed, on either back
/// end: the catalog does not list it, Latest() does not move, the store holds no blob at its path, and the job restores
/// from the previous committed checkpoint and ends exactly where an undisturbed run ends.
/// </summary>
public abstract class TornCheckpointWriteTests(StorageClusterFixture cluster)
{
    private const int TornBytes = 4 * 1024 * 1024;

    internal static TrainingJobSpec Spec(int steps, int interval, CheckpointRetentionPolicy? retention = null) => new()
    {
        Workload = TinyMlpWorker.WorkloadName,
        Ranks = 1,
        GlobalBatchSize = 8,
        Steps = steps,
        LearningRate = 0.02,
        WarmupSteps = 1,
        Seed = 4242,
        CheckpointInterval = interval,
        CollectiveTimeout = TimeSpan.FromSeconds(20),
        Retention = retention ?? CheckpointRetentionPolicy.KeepAll,
    };

    /// <summary>Kills a process that is writing <paramref name="path"/> into the cluster's store, half way.</summary>
    protected abstract Task KillWriterMidUploadAsync(string path);

    [Fact]
    public async Task TornCheckpointUploadIsNeverCommittedAndTheJobRestoresThePreviousOne()
    {
        var registry = cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var spec = Spec(steps: 8, interval: 4);
        using var dyingUpload = cluster.Store.HoldThenFailPut(path => path.Contains("/step-000000008.", StringComparison.Ordinal));
        var jobId = await registry.SubmitTraining(spec);
        var tornPath = await dyingUpload.Held.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(BlobCheckpointPayloadStore.PathOf(jobId, 8, generation: 1), tornPath);

        // The silo's own upload of step 8 is in flight; meanwhile a writer dies half way through the same blob.
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        var before = await catalog.Latest();
        Assert.NotNull(before);
        Assert.Equal(4, before.Step);
        await KillWriterMidUploadAsync(tornPath);

        Assert.Equal([4L], (await catalog.List()).Select(c => c.Step));
        Assert.Equal(before, await catalog.Latest());
        Assert.False(await cluster.Store.Inner.ExistsAsync(tornPath), "a torn upload must leave no blob at the checkpoint's path");
        var listed = await cluster.Store.Inner.ListAsync(BlobCheckpointPayloadStore.PrefixOf(jobId)).Select(b => b.Path).ToListAsync();
        Assert.Equal([BlobCheckpointPayloadStore.PathOf(jobId, 4, generation: 1)], listed);

        // The silo's upload fails too (its writer "died"): the job recovers from step 4 and finishes.
        dyingUpload.Release();
        var status = await cluster.WaitForEndAsync(jobId);
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(4, status.RestoredFromStep);
        Assert.Equal(1, status.Recoveries);
        Assert.Equal(8, status.Step);
        var committed = await catalog.List();
        Assert.Equal([4L, 8L], committed.Select(c => c.Step));

        var undisturbed = await registry.SubmitTraining(spec);
        Assert.Equal(JobState.Completed, (await cluster.WaitForEndAsync(undisturbed)).State);
        var expected = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(undisturbed).Latest();
        Assert.Equal(Parameters(spec, await cluster.Payloads.ReadAsync(expected!)), Parameters(spec, await cluster.Payloads.ReadAsync(committed[^1])));
    }

    internal static float[] Parameters(TrainingJobSpec spec, byte[] state)
    {
        using var worker = new TinyMlpWorker();
        worker.Initialize(new RankWorkerContext(spec, 0, 1, "cpu", 1));
        worker.LoadState(state);
        return worker.GetParameters();
    }
}

[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class FileSystemTornCheckpointWriteTests(FileSystemStorageCluster cluster) : TornCheckpointWriteTests(cluster)
{
    protected override async Task KillWriterMidUploadAsync(string path)
    {
        await TornWriterProcess.RunAndKillMidUploadAsync("fs", path, 4 * 1024 * 1024, stallAfter: 2 * 1024 * 1024, cluster.BlobRoot);
        var staged = Directory.GetFiles(Path.Combine(cluster.BlobRoot, ".staging"), "*.tmp");
        Assert.Contains(staged, file => new FileInfo(file).Length > 1024 * 1024);
    }
}

[Collection(AzuriteStorageClusterCollection.Name)]
public sealed class AzuriteTornCheckpointWriteTests(AzuriteStorageCluster cluster) : TornCheckpointWriteTests(cluster)
{
    protected override async Task KillWriterMidUploadAsync(string path)
    {
        await TornWriterProcess.RunAndKillMidUploadAsync("azure", path, 4 * 1024 * 1024, stallAfter: 2 * 1024 * 1024,
            cluster.ConnectionString, cluster.ContainerName, $"{StorageTestSiloConfigurator.AzureBlockBytes}");
        var blocks = (await new Azure.Storage.Blobs.Specialized.BlockBlobClient(cluster.ConnectionString, cluster.ContainerName, path)
            .GetBlockListAsync(Azure.Storage.Blobs.Models.BlockListTypes.All)).Value;
        Assert.True(blocks.UncommittedBlocks.Count() >= 2, $"the killed writer should have staged blocks, found {blocks.UncommittedBlocks.Count()} uncommitted");
    }
}
