using System.Diagnostics;
using RAE.Models.Data;
using RAE.Models.Stage1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace RAE.Models.Benchmarks;

/// <param name="Encoder">The frozen encoder (ResNet18 for the offline demo), already loaded.</param>
/// <param name="ImageSize">The encoder's input size (the ADM crop).</param>
/// <param name="Images">Synthetic 28x28 grayscale PNGs (Fashion-MNIST-like) decoded, cropped and encoded.</param>
/// <param name="LatentShape">Shape of the latents read back: the one the trained model consumes (DiT^DH-S: 768x16x16).</param>
/// <param name="ReadSamples">Latents written as shards and read back.</param>
public sealed record DataBenchmarkSettings(
    IRepresentationEncoder Encoder,
    int ImageSize,
    int Images,
    int EncodeBatch,
    long[] LatentShape,
    int ReadSamples,
    int ShardSize,
    int TrainBatch,
    long Seed = 0);

public sealed record DataBenchmarkReport(
    int Threads,
    int ImageSize,
    int ImagesEncoded,
    double EncodeSeconds,
    double ImagesPerSecondPerRank,
    IReadOnlyList<long> EncodedLatentShape,
    IReadOnlyList<long> ReadLatentShape,
    int SamplesRead,
    double ReadSeconds,
    double LatentReadSamplesPerSecond);

/// <summary>
/// The data side of training on one rank: images decoded + center-cropped + encoded per second (<see cref="ShardEncoder"/>,
/// the code path of the encode job's workers), and latent shards read back (checksum, parse, shape check:
/// <see cref="LatentDatasetManifest.ReadShard"/>) and assembled into shuffled training batches, in samples per second.
/// Everything is in memory: storage latency is not part of it.
/// </summary>
public static class DataPipelineBenchmark
{
    public static DataBenchmarkReport Run(DataBenchmarkSettings settings, Action<string>? progress = null)
    {
        if (settings.Images < 1 || settings.ReadSamples < 1 || settings.ShardSize < 1 || settings.TrainBatch < 1 || settings.EncodeBatch < 1)
            throw new ArgumentException("image, sample, shard and batch counts must be positive");
        var images = SyntheticImages(settings.Images, settings.Seed);
        var encoder = new ShardEncoder(settings.Encoder, new ShardEncoderOptions(settings.ImageSize, settings.EncodeBatch));
        using (encoder.Encode(images.Take(Math.Min(images.Count, settings.EncodeBatch)).ToList(), 10)) { }
        var clock = Stopwatch.StartNew();
        using (var encoded = encoder.Encode(images, 10))
            if (encoded.Count != images.Count) throw new InvalidOperationException($"only {encoded.Count} of {images.Count} synthetic images were encoded");
        var encodeSeconds = clock.Elapsed.TotalSeconds;
        progress?.Invoke($"encoded {images.Count} images at {settings.ImageSize} px in {encodeSeconds:F2} s");

        var (manifest, shards) = SyntheticLatentDataset(settings);
        clock.Restart();
        var read = ReadBatches(manifest, shards, settings.TrainBatch, settings.Seed);
        var readSeconds = clock.Elapsed.TotalSeconds;
        progress?.Invoke($"read {read} latents [{string.Join(", ", settings.LatentShape)}] in {readSeconds:F2} s");
        return new DataBenchmarkReport(get_num_threads(), settings.ImageSize, images.Count, encodeSeconds, images.Count / encodeSeconds,
            encoder.LatentShape, settings.LatentShape, read, readSeconds, read / readSeconds);
    }

    /// <summary>Reads every shard through the manifest's checks and cuts shuffled batches of <paramref name="batch"/> (drop-last).</summary>
    private static int ReadBatches(LatentDatasetManifest manifest, IReadOnlyList<byte[]> shards, int batch, long seed)
    {
        var generator = new Generator((ulong)seed, CPU);
        var samples = 0;
        for (var index = 0; index < shards.Count; index++)
        {
            using var scope = NewDisposeScope();
            using var shard = manifest.ReadShard(manifest.Shards[index], shards[index]);
            var order = randperm(shard.Count, generator: generator);
            for (long start = 0; start + batch <= shard.Count; start += batch)
            {
                var picked = order.narrow(0, start, batch);
                // A training batch: its latents gathered into one contiguous tensor, and its labels.
                shard.Latents.index_select(0, picked).contiguous();
                shard.Labels.index_select(0, picked);
                samples += batch;
            }
        }
        return samples;
    }

    private static (LatentDatasetManifest Manifest, IReadOnlyList<byte[]> Shards) SyntheticLatentDataset(DataBenchmarkSettings settings)
    {
        var generator = new Generator((ulong)settings.Seed + 1, CPU);
        var shards = new List<byte[]>();
        var entries = new List<LatentShardEntry>();
        for (var first = 0; first < settings.ReadSamples; first += settings.ShardSize)
        {
            var count = Math.Min(settings.ShardSize, settings.ReadSamples - first);
            using var latents = randn([count, .. settings.LatentShape], generator: generator);
            var bytes = LatentShard.Write(latents, Enumerable.Range(first, count).Select(i => (long)(i % 10)).ToArray());
            entries.Add(new LatentShardEntry($"shard-{shards.Count:D5}.safetensors", $"shard-{shards.Count:D5}.bin", count, bytes.Length, DatasetManifest.Sha256Hex(bytes)));
            shards.Add(bytes);
        }
        var perClass = new int[10];
        for (var i = 0; i < settings.ReadSamples; i++) perClass[i % 10]++;
        var manifest = new LatentDatasetManifest
        {
            Name = "bench", Dataset = "bench", DatasetManifestSha256 = "", Encoder = "synthetic", ConfigSha256 = "", ImageSize = settings.ImageSize,
            LatentShape = settings.LatentShape, DType = "float32", Flips = false, Classes = Enumerable.Range(0, 10).Select(c => $"class-{c}").ToArray(),
            CountsPerClass = perClass, Shards = entries,
        };
        return (manifest, shards);
    }

    /// <summary>Fashion-MNIST-like images: 28x28 grayscale PNGs of seeded noise, 10 classes.</summary>
    public static IReadOnlyList<ShardImage> SyntheticImages(int count, long seed)
    {
        var random = new Random((int)seed);
        var images = new List<ShardImage>(count);
        for (var index = 0; index < count; index++)
        {
            using var image = new Image<L8>(28, 28);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (var x = 0; x < row.Length; x++) row[x] = new L8((byte)random.Next(256));
                }
            });
            using var png = new MemoryStream();
            image.SaveAsPng(png);
            images.Add(new ShardImage($"synthetic-{index:D5}.png", index % 10, png.ToArray()));
        }
        return images;
    }
}
