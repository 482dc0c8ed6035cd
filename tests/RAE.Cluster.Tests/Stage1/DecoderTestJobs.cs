using System.Text;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Storage;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage1;
using RAE.Models.Data;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Stage1;

/// <summary>
/// A tiny Stage 1 job for tests: the offline ResNet18 encoder at 64 px (a 2x2 grid of 512 channels), a 1-layer 32-wide
/// decoder with 16-px patches (32x32 images), the resnet18-heads discriminator at 64 px, the ResNet18 perceptual loss, and
/// a generated dataset of 24 32x32 images in 2 classes (a disc or a square of a random colour on a random background).
/// </summary>
internal static class DecoderTestJobs
{
    public const string DatasetName = "stage1-shapes";
    public const int DatasetSize = 24;
    public const int ImageSide = 32;

    private static readonly Lazy<string> DecoderFolder = new(() =>
    {
        var folder = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "rae-stage1-tests", "decoder")).FullName;
        File.WriteAllText(Path.Combine(folder, "config.json"), """
            {"hidden_size": 512, "decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
             "decoder_intermediate_size": 64, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "qkv_bias": true, "num_channels": 3,
             "initializer_range": 0.02, "patch_size": 16, "image_size": 32}
            """);
        return folder;
    });

    public static string Config => $$"""
        data:
          source: dataset
          name: {{DatasetName}}
          num_samples: {{DatasetSize}}
          image_size: 32
        stage_1:
          target: stage1.RAE
          params:
            encoder_cls: 'ResNet18'
            encoder_input_size: 64
            decoder_config_path: '{{DecoderFolder.Value}}'
            decoder_patch_size: 16
            noise_tau: 0.8
        training:
          epochs: 10
          global_batch_size: 8
          ema_decay: 0.9
          clip_grad: 0.0
          sample_every: 1000
          global_seed: 3
          optimizer:
            lr: 2.0e-3
            betas: [0.9, 0.95]
            weight_decay: 0.0
        gan:
          disc:
            arch:
              kind: resnet18-heads
              input_size: 64
              ks: 3
            optimizer:
              lr: 1.0e-3
              betas: [0.9, 0.95]
            scheduler:
              type: cosine
              warmup_steps: 2
              decay_end_steps: 20
              base_lr: 1.0e-3
              final_lr: 1.0e-4
              warmup_from_zero: true
            augment:
              prob: 1.0
              cutout: 0.25
          loss:
            disc_weight: 0.5
            perceptual_weight: 0.5
            perceptual: resnet18
            disc_start: 0
            disc_upd_start: 0
            lpips_start: 0
            disc_updates: 2
        """;

    public static TrainingJobSpec Spec(int ranks, int steps = 3, params string[] overrides) =>
        TrainingJobSpecs.FromConfig(RaeConfig.Parse(Config, "tiny Stage 1 test config", overrides), ranks, TrainingJobSpecs.DecoderWorkload) with
        {
            Steps = steps,
            CheckpointInterval = 0,
        };

    /// <summary>A file-system blob store in a fresh folder holding the generated dataset.</summary>
    public static string NewBlobRoot() => Path.Combine(Path.GetTempPath(), "rae-stage1-blobs-" + Guid.NewGuid().ToString("N")[..8]);

    public static FileSystemBlobStore StoreWithDataset(string root)
    {
        var store = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = root });
        WriteDatasetAsync(store).GetAwaiter().GetResult();
        return store;
    }

    /// <summary>Writes the 24-image dataset (one shard and its manifest) where the dataset grain would.</summary>
    /// <param name="seed">Another seed draws other shapes (a held-out dataset).</param>
    public static Task WriteDatasetAsync(IBlobStore store, string name = DatasetName, int seed = 11) =>
        WriteImagesAsync(store, name, Enumerable.Range(0, DatasetSize).Select(index => new ShardImage($"shape-{index:D2}.png", index % 2, Png(Shape(index, seed)))).ToList(),
            ["disc", "square"], "generated shapes");

    /// <summary>Writes <paramref name="images"/> as a one-shard dataset (shard and manifest) where the dataset grain would.</summary>
    public static async Task WriteImagesAsync(IBlobStore store, string name, IReadOnlyList<ShardImage> images, IReadOnlyList<string> classes, string source)
    {
        var shard = ImageShard.Write(images);
        const string shardName = "shard-00000.bin";
        await store.PutBytesAsync(DatasetBlobs.ShardPathOf(name, shardName), shard);
        var manifest = new DatasetManifest
        {
            Name = name,
            Source = source,
            Classes = [.. classes],
            CountsPerClass = [.. Enumerable.Range(0, classes.Count).Select(label => images.Count(image => image.Label == label))],
            ShardSize = images.Count,
            Shards = [new ShardEntry(shardName, images.Count, shard.Length, DatasetManifest.Sha256Hex(shard))],
            Skipped = [],
        };
        await store.PutBytesAsync(DatasetBlobs.ManifestPathOf(name), Encoding.UTF8.GetBytes(manifest.ToJson()));
    }

    /// <summary>Held-out images [n,3,32,32] in [0,1], drawn like the dataset's but from another seed.</summary>
    public static Tensor HeldOut(int count)
    {
        using var scope = NewDisposeScope();
        return stack(Enumerable.Range(0, count).Select(index => Shape(index, seed: 977).ToTensor()).ToArray()).MoveToOuterDisposeScope();
    }

    /// <summary>A disc (even index) or a square (odd) of one random colour on another, at a random place.</summary>
    private static RgbImage Shape(int index, int seed)
    {
        var random = new Random(seed * 1000 + index);
        var background = new[] { (byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256) };
        var colour = new[] { (byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256) };
        var radius = random.Next(5, 10);
        int cx = random.Next(radius, ImageSide - radius), cy = random.Next(radius, ImageSide - radius);
        var pixels = new byte[ImageSide * ImageSide * 3];
        for (var y = 0; y < ImageSide; y++)
            for (var x = 0; x < ImageSide; x++)
            {
                var inside = index % 2 == 0
                    ? (x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius
                    : Math.Abs(x - cx) <= radius && Math.Abs(y - cy) <= radius;
                var source = inside ? colour : background;
                for (var c = 0; c < 3; c++) pixels[(y * ImageSide + x) * 3 + c] = source[c];
            }
        return new RgbImage(ImageSide, ImageSide, pixels);
    }

    private static byte[] Png(RgbImage image)
    {
        using var png = Image.LoadPixelData<Rgb24>(image.Pixels, image.Width, image.Height);
        using var stream = new MemoryStream();
        png.SaveAsPng(stream);
        return stream.ToArray();
    }

    public static DecoderRankWorker[] CreateWorkers(TrainingJobSpec spec, IBlobStore store)
    {
        var workers = new DecoderRankWorker[spec.Ranks];
        for (var rank = 0; rank < spec.Ranks; rank++)
        {
            workers[rank] = new DecoderRankWorker(store);
            workers[rank].Initialize(new RankWorkerContext(spec, rank, spec.Ranks, "cpu", 1, "stage1-test"));
        }
        // The coordinator broadcasts rank 0's parameters before step 1; every rank builds the same ones from the seed anyway.
        var initial = workers[0].GetParameters();
        foreach (var worker in workers.Skip(1)) worker.SetParameters(initial);
        return workers;
    }

    /// <summary>
    /// Steps [first, last] as the rank grain runs them: the first gradients, then every later phase's, each all-reduced
    /// with the collective group's mean (added in rank order, then divided), the last mean to ApplyUpdate.
    /// Returns each step's reported loss and details, averaged over ranks as the coordinator does.
    /// </summary>
    public static List<(double Loss, Dictionary<string, double> Details)> Advance(IReadOnlyList<DecoderRankWorker> workers, long first, long last,
        List<float[]>? phaseMeans = null)
    {
        var reports = new List<(double, Dictionary<string, double>)>();
        for (var step = first; step <= last; step++)
        {
            var results = workers.Select(worker => worker.ComputeGradients(step)).ToList();
            var averaged = Mean(results.Select(r => r.Gradients).ToList());
            phaseMeans?.Add(averaged);
            while (true)
            {
                var captured = averaged;
                var next = workers.Select(worker => worker.ContinueStep(step, captured)).ToList();
                if (next.All(gradients => gradients is null)) break;
                Assert.All(next, Assert.NotNull);
                averaged = Mean(next!);
                phaseMeans?.Add(averaged);
            }
            foreach (var worker in workers) worker.ApplyUpdate(step, averaged);
            var details = workers.SelectMany(w => w.LastStepDetails).GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Average(p => p.Value));
            reports.Add((results.Average(r => r.Loss), details));
        }
        return reports;
    }

    private static float[] Mean(IReadOnlyList<float[]?> contributions)
    {
        var result = (float[])contributions[0]!.Clone();
        for (var rank = 1; rank < contributions.Count; rank++)
            for (var i = 0; i < result.Length; i++) result[i] += contributions[rank]![i];
        if (contributions.Count > 1)
        {
            float count = contributions.Count;
            for (var i = 0; i < result.Length; i++) result[i] /= count;
        }
        return result;
    }

    public static float RelativeDifference(float[] reference, float[] other)
    {
        Assert.Equal(reference.Length, other.Length);
        var scale = reference.Max(MathF.Abs);
        return reference.Zip(other, (a, b) => MathF.Abs(a - b)).Max() / scale;
    }
}
