using System.Text;
using RAE.Cluster.Tests.Checkpoints;
using RAE.GrainInterfaces;
using RAE.Models.Data;
using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.EncodeJobs;

/// <summary>
/// Encode jobs on an Azurite blob store: 3 classes x 12 images of 32x32 in shards of 8, ResNet18 at 64 px. The stored
/// latents equal an in-process encode byte for byte, the statistics a direct computation, and the manifest comes last.
/// </summary>
[Collection(AzuriteStorageClusterCollection.Name)]
public sealed class EncodeJobTests(AzuriteStorageCluster cluster)
{
    private IJobRegistryGrain Registry => cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task AnEncodeJobWritesTheLatentsOfAnInProcessEncodeWithExactStatisticsAndTheManifestLast()
    {
        var dataset = await EncodeTestData.AddDatasetAsync(cluster.Grains, "encode-e2e");
        var latents = dataset + "-latents";
        var spec = EncodeTestData.Spec(dataset, latents);

        var jobId = await Registry.SubmitEncoding(spec);
        var status = await EncodeTestData.WaitForEndAsync(cluster.Grains, jobId);

        Assert.True(status.State == JobState.Completed, status.FailureReason);
        Assert.Equal((5, 5, 36L, 36L), (status.ShardsDone, status.ShardsTotal, status.ImagesDone, status.ImagesTotal));
        Assert.Empty(status.Skipped);
        Assert.Equal($"latents/{latents}/manifest.json", status.OutputLocation);
        var listed = (await Registry.List()).Single(job => job.JobId == jobId);
        Assert.Equal((JobKind.Encoding, JobState.Completed, 5L, 5L), (listed.Kind, listed.State, listed.Progress, listed.Total));

        var manifest = LatentDatasetManifest.FromJson(Encoding.UTF8.GetString((await cluster.Store.GetAsync(status.OutputLocation!)).Data), latents);
        Assert.Equal((latents, dataset, "ResNet18", 64, "float32", false), (manifest.Name, manifest.Dataset, manifest.Encoder, manifest.ImageSize, manifest.DType, manifest.Flips));
        Assert.Equal([512L, 2, 2], manifest.LatentShape);
        Assert.Equal(["class-0", "class-1", "class-2"], manifest.Classes);
        Assert.Equal([12, 12, 12], manifest.CountsPerClass);
        Assert.Equal(spec.Config!.Sha256, manifest.ConfigSha256);
        var datasetManifest = (await cluster.Store.GetAsync($"datasets/{dataset}/manifest.json")).Data;
        Assert.Equal(DatasetManifest.Sha256Hex(datasetManifest), manifest.DatasetManifestSha256);
        Assert.Equal(["shard-00000.bin", "shard-00001.bin", "shard-00002.bin", "shard-00003.bin", "shard-00004.bin"], manifest.Shards.Select(s => s.SourceShard));
        Assert.Equal([8, 8, 8, 8, 4], manifest.Shards.Select(s => s.Count));
        Assert.Equal(new LatentStatisticsEntry("stat.pt", "stat.safetensors", 36, "exact"), manifest.Statistics);
        // The manifest was written after every other file of the latent dataset.
        var blobs = await cluster.Store.ListAsync($"latents/{latents}/").ToListAsync();
        Assert.Equal(blobs.Max(b => b.LastModified), blobs.Single(b => b.Path.EndsWith("manifest.json", StringComparison.Ordinal)).LastModified);

        var stored = new List<byte[]>();
        foreach (var entry in manifest.Shards)
        {
            var bytes = (await cluster.Store.GetAsync($"latents/{latents}/{entry.File}")).Data;
            manifest.ReadShard(entry, bytes).Dispose();
            stored.Add(bytes);
        }
        var expected = await EncodeTestData.EncodeDirectlyAsync(cluster.Store, dataset, new ShardEncoderOptions(64, BatchSize: 5));
        EncodeTestData.AssertSameShards(expected, stored);

        using var all = EncodeTestData.AllLatents(stored);
        using var directMean = all.mean([0L]);
        using var directVar = all.var(0, unbiased: false);
        var statPt = Path.Combine(cluster.DataFolder, $"{latents}-stat.pt");
        await File.WriteAllBytesAsync(statPt, (await cluster.Store.GetAsync($"latents/{latents}/stat.pt")).Data);
        using var fromPt = CheckpointLoader.LoadLatentStats(statPt, [512, 2, 2]);
        using var safetensors = new MemoryStream((await cluster.Store.GetAsync($"latents/{latents}/stat.safetensors")).Data);
        var fromSafetensors = SafeTensors.Load(safetensors, "stat.safetensors");
        try
        {
            AssertClose(directMean, fromPt.Mean!, "mean (stat.pt)");
            AssertClose(directVar, fromPt.Var!, "var (stat.pt)");
            AssertClose(directMean, fromSafetensors["mean"], "mean (stat.safetensors)");
            AssertClose(directVar, fromSafetensors["var"], "var (stat.safetensors)");
        }
        finally
        {
            foreach (var tensor in fromSafetensors.Values) tensor.Dispose();
        }

        // The name is taken now: a second job for it is refused before anything is written.
        var collision = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitEncoding(spec));
        Assert.Contains($"latent dataset '{latents}' already exists", collision.Message);

        var catalog = cluster.Grains.GetGrain<ILatentCatalogGrain>(0);
        Assert.Equal((36L, 5, "exact"), ((await catalog.Describe(latents)).Count, (await catalog.Describe(latents)).Shards, (await catalog.Describe(latents)).StatisticsMethod));
        Assert.Contains(latents, (await catalog.List()).Select(l => l.Name));
        Assert.True(await catalog.Remove(latents));
        Assert.DoesNotContain(latents, (await catalog.List()).Select(l => l.Name));
        Assert.Empty(await cluster.Store.ListAsync($"latents/{latents}/").ToListAsync());
        Assert.Contains("no latent dataset named", (await Assert.ThrowsAsync<RaeJobException>(() => catalog.Describe(latents))).Message);
    }

    [Fact]
    public async Task FlipsBFloat16AndTheMomentumRuleAreStoredAsAsked()
    {
        var dataset = await EncodeTestData.AddDatasetAsync(cluster.Grains, "encode-flip", classes: 2, perClass: 5, shardSize: 4);
        var latents = dataset + "-flipped";
        var spec = EncodeTestData.Spec(dataset, latents) with
        {
            Flip = true, Precision = RAE.Configuration.ComputePrecision.BFloat16, Statistics = LatentStatisticsMethod.Momentum, BatchSize = 3,
        };

        var status = await EncodeTestData.WaitForEndAsync(cluster.Grains, await Registry.SubmitEncoding(spec));

        Assert.True(status.State == JobState.Completed, status.FailureReason);
        Assert.Empty(status.Skipped);
        var manifest = LatentDatasetManifest.FromJson(Encoding.UTF8.GetString((await cluster.Store.GetAsync(status.OutputLocation!)).Data), latents);
        Assert.Equal(("bfloat16", true, "momentum", 20L), (manifest.DType, manifest.Flips, manifest.Statistics!.Method, manifest.Statistics.Count));
        var expected = await EncodeTestData.EncodeDirectlyAsync(cluster.Store, dataset, new ShardEncoderOptions(64, BatchSize: 3, Flip: true, StoreBFloat16: true));
        var stored = new List<byte[]>();
        foreach (var entry in manifest.Shards) stored.Add((await cluster.Store.GetAsync($"latents/{latents}/{entry.File}")).Data);
        EncodeTestData.AssertSameShards(expected, stored);
        using (var first = LatentShard.Read(stored[0], "shard 0"))
        {
            Assert.Equal(ScalarType.BFloat16, first.Latents.dtype);
            Assert.NotNull(first.FlippedLatents);
            Assert.False(first.FlippedLatents!.eq(first.Latents).all().item<bool>());
        }

        // The reference's rule over the same latents in shard order, batches of 3 across shard boundaries.
        using var reference = new MomentumLatentStream([512, 2, 2], 3);
        foreach (var bytes in stored)
        {
            using var shard = LatentShard.Read(bytes, "shard");
            reference.Add(shard.Latents);
            reference.Add(shard.FlippedLatents!);
        }
        Assert.Equal(reference.Finish().Safetensors, (await cluster.Store.GetAsync($"latents/{latents}/stat.safetensors")).Data);
    }

    [Fact]
    public async Task AnUnknownDatasetABadNameAndUnreachableStorageAreRefusedByName()
    {
        var unknown = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitEncoding(EncodeTestData.Spec("no-such-dataset", "some-latents")));
        Assert.Contains("no dataset named 'no-such-dataset'", unknown.Message);
        var badName = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitEncoding(EncodeTestData.Spec("whatever", "Bad/Name")));
        Assert.Contains("'Bad/Name'", badName.Message);

        var dataset = await EncodeTestData.AddDatasetAsync(cluster.Grains, "encode-outage", classes: 1, perClass: 4, shardSize: 2);
        var latents = dataset + "-latents";
        using (cluster.Store.FailFrom(path => path.StartsWith($"latents/{latents}/", StringComparison.Ordinal), path => path.Contains("shard-00001", StringComparison.Ordinal)))
        {
            var status = await EncodeTestData.WaitForEndAsync(cluster.Grains, await Registry.SubmitEncoding(EncodeTestData.Spec(dataset, latents)));
            Assert.Equal(JobState.Failed, status.State);
            Assert.Contains("latent storage failed", status.FailureReason);
            Assert.Contains(cluster.Store.Location, status.FailureReason);
        }
        Assert.False(await cluster.Store.ExistsAsync($"latents/{latents}/manifest.json"));
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        using var scope = NewDisposeScope();
        var stored = actual.to(ScalarType.Float64);
        var relative = (stored - expected).abs().max().item<double>() / Math.Max(expected.abs().max().item<double>(), 1e-30);
        Assert.True(relative < 1e-6, $"{what}: relative error {relative:E2}");
    }
}
