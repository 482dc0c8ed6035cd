using System.Text;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Storage;
using RAE.Models.Data;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>
/// Tiny latent datasets written straight into a blob store in the layout the encode job writes
/// (<see cref="LatentBlobs"/>: shards, stat.pt, stat.safetensors, manifest.json last), and tiny DiT^DH jobs on them.
/// </summary>
internal static class LatentTestDatasets
{
    public const int Count = 40;

    /// <summary>
    /// <paramref name="count"/> seeded latents of <paramref name="shape"/> (per-position mean and scale, so the statistics
    /// matter), labels i mod <paramref name="classes"/>, in shards of 20, with the mirrored latents (here: flipped along W)
    /// and exact statistics.
    /// </summary>
    public static async Task<LatentDatasetManifest> WriteAsync(IBlobStore store, string name, long[]? shape = null, int classes = 10,
        int count = Count, int shardSize = 20, bool flips = true, string dtype = "float32")
    {
        shape ??= [4, 4, 4];
        var labels = Enumerable.Range(0, count).Select(i => (long)(i % classes)).ToArray();
        // The tensor work finishes before the first await: a dispose scope is per thread and must never span one.
        var (files, shards) = Build(name, shape, labels, shardSize, flips, dtype);
        foreach (var (path, bytes) in files) await store.PutBytesAsync(path, bytes);
        var manifest = new LatentDatasetManifest
        {
            Name = name,
            Dataset = "tiny-images",
            DatasetManifestSha256 = new string('a', 64),
            Encoder = "test",
            ConfigSha256 = new string('b', 64),
            ImageSize = 16,
            LatentShape = shape,
            DType = dtype,
            Flips = flips,
            Classes = Enumerable.Range(0, classes).Select(c => $"class-{c}").ToList(),
            CountsPerClass = Enumerable.Range(0, classes).Select(c => labels.Count(label => label == c)).ToList(),
            Shards = shards,
            Statistics = new LatentStatisticsEntry(LatentBlobs.StatPtFile, LatentBlobs.StatSafetensorsFile, count, "exact"),
        };
        await store.PutBytesAsync(LatentBlobs.ManifestPathOf(name), Encoding.UTF8.GetBytes(manifest.ToJson()));
        return manifest;
    }

    private static (List<(string Path, byte[] Bytes)> Files, List<LatentShardEntry> Shards) Build(string name, long[] shape, long[] labels,
        int shardSize, bool flips, string dtype)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)name.Sum(c => (long)c), CPU);
        var offset = randn(shape, generator: generator);
        var stored = randn([labels.Length, .. shape], generator: generator).mul_(1.7).add_(offset);
        if (dtype == "bfloat16") stored = stored.to(ScalarType.BFloat16);
        var mirrored = stored.flip(-1).contiguous();
        using var moments = LatentMoments.Empty(shape);
        var files = new List<(string, byte[])>();
        var shards = new List<LatentShardEntry>();
        for (var start = 0; start < labels.Length; start += shardSize)
        {
            var size = Math.Min(shardSize, labels.Length - start);
            var file = $"shard-{shards.Count:D5}.safetensors";
            var bytes = LatentShard.Write(stored.narrow(0, start, size), labels[start..(start + size)], flips ? mirrored.narrow(0, start, size) : null);
            files.Add((LatentBlobs.ShardPathOf(name, file), bytes));
            moments.Add(stored.narrow(0, start, size));
            shards.Add(new LatentShardEntry(file, file.Replace(".safetensors", ".bin"), size, bytes.LongLength, DatasetManifest.Sha256Hex(bytes)));
        }
        var folder = Path.Combine(Path.GetTempPath(), "rae-latent-stat-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        try
        {
            moments.SaveStatistics(Path.Combine(folder, LatentBlobs.StatPtFile), Path.Combine(folder, LatentBlobs.StatSafetensorsFile));
            foreach (var file in new[] { LatentBlobs.StatPtFile, LatentBlobs.StatSafetensorsFile })
                files.Add((LatentBlobs.PrefixOf(name) + file, File.ReadAllBytes(Path.Combine(folder, file))));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        return (files, shards);
    }

    /// <summary>The tiny DiT^DH job of <see cref="DiTTestJobs.TinyConfig"/> on latent dataset <paramref name="dataset"/> of <paramref name="size"/> latents.</summary>
    public static TrainingJobSpec Spec(string dataset, int ranks, int accumulation = 1, int steps = 6, long size = Count, params string[] overrides) =>
        TrainingJobSpecs.FromConfig(RaeConfig.Parse(DiTTestJobs.TinyConfig, "tiny DiT^DH latent test config",
            ["data.source=latents", $"data.dataset={dataset}", .. overrides]), ranks, latentDatasetSize: size) with
        {
            GlobalBatchSize = 8,
            GradientAccumulation = accumulation,
            Steps = steps,
            CheckpointInterval = 0,
        };
}
