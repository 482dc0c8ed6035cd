using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Cluster.Tests.Checkpoints;
using RAE.GrainInterfaces;
using RAE.Models.IO;
using TorchSharp;

namespace RAE.Cluster.Tests.Client;

/// <summary>Export fetches the payload through the cluster (never from a local file) and keeps its behaviour.</summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class CheckpointExportTests(FileSystemStorageCluster cluster) : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rae-export-tests-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    /// <summary>Writes a safetensors payload into the cluster's store and commits it at step 40 of a fresh job.</summary>
    private async Task<CheckpointInfo> CommitAsync(params (string Key, float Value)[] tensors)
    {
        var stream = new MemoryStream();
        using (var scope = torch.NewDisposeScope())
            SafeTensors.Save(stream, tensors.Select(t => KeyValuePair.Create(t.Key, torch.full(2, 3, t.Value))));
        var jobId = "train-export-" + Guid.NewGuid().ToString("N")[..8];
        var checkpoint = await cluster.Payloads.WriteAsync(jobId, 40, stream.ToArray(), 0.5);
        await cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId).Commit(checkpoint, CheckpointRetentionPolicy.Default);
        return checkpoint;
    }

    private static Dictionary<string, float> Read(string path)
    {
        using var scope = torch.NewDisposeScope();
        return SafeTensors.Load(path).ToDictionary(t => t.Key, t => t.Value[0, 0].item<float>());
    }

    [Theory]
    [InlineData("ema", 2f)]
    [InlineData("model", 1f)]
    public async Task ExportKeepsThePickedWeightsUnderReferenceKeyNames(string weights, float expected)
    {
        var checkpoint = await CommitAsync(("model.x_embedder.proj.weight", 1f), ("ema.x_embedder.proj.weight", 2f), ("ema.t_embedder.mlp.0.bias", 2f), ("optimizer.state.0.exp_avg", 9f));
        Assert.False(File.Exists(checkpoint.Location), "the catalog names a blob path, not a file the client could read");
        var output = Path.Combine(_folder, "out.safetensors");
        Assert.Equal(2 - (weights == "model" ? 1 : 0), await CheckpointsExportCommand.ExportAsync(cluster.Grains, checkpoint, weights, weightsExplicit: true, output));
        var exported = Read(output);
        Assert.Equal(expected, exported["x_embedder.proj.weight"]);
        Assert.DoesNotContain(exported.Keys, k => k.StartsWith("ema.", StringComparison.Ordinal) || k.StartsWith("optimizer", StringComparison.Ordinal));
        Assert.Equal(["out.safetensors"], Directory.GetFiles(_folder).Select(Path.GetFileName));
    }

    [Fact]
    public async Task BareWeightsAreExportedAsTheyAre()
    {
        var checkpoint = await CommitAsync(("blocks.0.attn.qkv.weight", 4f), ("final_layer.linear.bias", 5f));
        var output = Path.Combine(_folder, "bare.safetensors");
        Assert.Equal(2, await CheckpointsExportCommand.ExportAsync(cluster.Grains, checkpoint, "ema", weightsExplicit: false, output));
        Assert.Equal(new Dictionary<string, float> { ["blocks.0.attn.qkv.weight"] = 4f, ["final_layer.linear.bias"] = 5f }, Read(output));
    }

    [Fact]
    public async Task CorruptPayloadIsRefusedAndNothingIsWritten()
    {
        var checkpoint = await CommitAsync(("ema.w", 1f));
        var blobFile = Path.Combine(cluster.BlobRoot, checkpoint.Location);
        var bytes = await File.ReadAllBytesAsync(blobFile);
        bytes[checkpoint.SizeBytes / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(blobFile, bytes);
        var output = Path.Combine(_folder, "corrupt.safetensors");
        var error = await Assert.ThrowsAsync<RaeJobException>(() => CheckpointsExportCommand.ExportAsync(cluster.Grains, checkpoint, "ema", false, output));
        Assert.Contains("corrupt", error.Message);
        Assert.Contains(checkpoint.Location, error.Message);
        Assert.Empty(Directory.GetFiles(_folder));
    }

    [Fact]
    public async Task UnreachableStorageIsNamedAndNothingIsWritten()
    {
        var checkpoint = await CommitAsync(("ema.w", 1f));
        using var outage = cluster.Store.FailFrom(path => path == checkpoint.Location, path => path == checkpoint.Location);
        var output = Path.Combine(_folder, "unreachable.safetensors");
        var error = await Assert.ThrowsAsync<RaeJobException>(() => CheckpointsExportCommand.ExportAsync(cluster.Grains, checkpoint, "ema", false, output));
        Assert.Contains("injected outage", error.Message);
        Assert.Contains(checkpoint.Location, error.Message);
        Assert.False(Directory.Exists(_folder) && Directory.GetFiles(_folder).Length > 0, "nothing may be left behind");
    }

    [Fact]
    public async Task MissingPartIsNamed()
    {
        var checkpoint = await CommitAsync(("model.w", 1f));
        var error = await Assert.ThrowsAsync<RaeJobException>(() => CheckpointsExportCommand.ExportAsync(cluster.Grains, checkpoint, "ema", true, Path.Combine(_folder, "none.safetensors")));
        Assert.Contains("'ema.*'", error.Message);
    }

    [Fact]
    public async Task PayloadArrivesInChunksOfTheRequestedSize()
    {
        var checkpoint = await CommitAsync(("ema.a", 1f), ("ema.b", 2f), ("model.a", 3f));
        var stored = await cluster.Payloads.ReadAsync(checkpoint);
        var chunks = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(checkpoint.JobId).ReadPayload(checkpoint.Step, 100).WithBatchSize(1).ToListAsync();
        Assert.Equal((int)Math.Ceiling(stored.Length / 100.0), chunks.Count);
        Assert.All(chunks.SkipLast(1), chunk => Assert.Equal(100, chunk.Length));
        Assert.Equal(stored, chunks.SelectMany(c => c).ToArray());

        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(checkpoint.JobId);
        var missing = await Assert.ThrowsAsync<RaeJobException>(() => catalog.ReadPayload(41, 100).ToListAsync().AsTask());
        Assert.Contains("no committed checkpoint at step 41", missing.Message);
        var tooLarge = await Assert.ThrowsAsync<RaeJobException>(() => catalog.ReadPayload(40, ICheckpointStoreGrain.MaxChunkBytes + 1).ToListAsync().AsTask());
        Assert.Contains("out of range", tooLarge.Message);
    }
}
