using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Data;
using RAE.Models.Stage1.Encoders;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.EncodeJobs;

/// <summary>Tiny datasets and the encoder configuration of the encode tests: ResNet18 at 64 px (a 2x2 grid of 512 channels).</summary>
internal static class EncodeTestData
{
    public const int EncoderInputSize = 64;

    public static RaeConfig Config() => RaeConfig.Parse($"""
        stage_1:
          target: stage1.RAE
          params:
            encoder_cls: 'ResNet18'
            encoder_input_size: {EncoderInputSize}
            encoder_params:
              model_path: null
              normalize: true
            noise_tau: 0.8
            reshape_to_2d: true
        """, "encode-test.yaml");

    public static EncodeJobSpec Spec(string dataset, string latents) => new()
    {
        Dataset = dataset,
        LatentName = latents,
        Config = JobConfiguration.From(Config()),
        BatchSize = 5,
    };

    /// <summary>An ImageFolder of <paramref name="classes"/> classes x <paramref name="perClass"/> distinct 32x32 PNGs, uploaded through the cluster.</summary>
    public static async Task<string> AddDatasetAsync(IGrainFactory grains, string stem, int classes = 3, int perClass = 12, int shardSize = 8)
    {
        var root = WriteImageFolder(classes, perClass);
        try
        {
            var name = $"{stem}-{Guid.NewGuid().ToString("N")[..8]}";
            using var output = new StringWriter();
            using var error = new StringWriter();
            var exitCode = await DatasetsAddCommand.AddAsync(grains, name, ImageSources.Open(root), new DatasetBuildOptions { ShardSize = shardSize },
                new CommandContext(output, error, Json: false, Live: false, CancellationToken.None));
            Assert.True(exitCode == 0, error.ToString());
            return name;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A temporary ImageFolder tree (<c>class-N/img-NN.png</c>, 32x32); the caller deletes it.</summary>
    public static string WriteImageFolder(int classes, int perClass)
    {
        var root = Path.Combine(Path.GetTempPath(), "rae-encode-images-" + Guid.NewGuid().ToString("N")[..8]);
        for (var label = 0; label < classes; label++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(root, $"class-{label}")).FullName;
            for (var index = 0; index < perClass; index++)
            {
                using var image = new Image<Rgb24>(32, 32);
                image.ProcessPixelRows(rows =>
                {
                    for (var y = 0; y < rows.Height; y++)
                    {
                        var row = rows.GetRowSpan(y);
                        for (var x = 0; x < row.Length; x++)
                            row[x] = new Rgb24((byte)(label * 80 + x * 5), (byte)(index * 19 + y * 7), (byte)((x * y + index * 13) % 256));
                    }
                });
                image.SaveAsPng(Path.Combine(folder, $"img-{index:D2}.png"));
            }
        }
        return root;
    }

    public static async Task<EncodeJobStatus> WaitForEndAsync(IGrainFactory grains, string jobId, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(120));
        while (true)
        {
            var status = await grains.GetGrain<IEncodeJobGrain>(jobId).GetStatus();
            if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return status;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Encode job {jobId} is still {status.State} at {status.ShardsDone}/{status.ShardsTotal} shards after the test's deadline.");
            await Task.Delay(100);
        }
    }

    /// <summary>What encoding each image shard of the dataset in this process gives: the expected latent shard bytes, in shard order.</summary>
    public static async Task<IReadOnlyList<byte[]>> EncodeDirectlyAsync(IBlobStore store, string dataset, ShardEncoderOptions options)
    {
        var manifest = DatasetManifest.FromJson(System.Text.Encoding.UTF8.GetString((await store.GetAsync($"datasets/{dataset}/manifest.json")).Data), dataset);
        var shardBytes = new List<(ShardEntry Shard, byte[] Bytes)>();
        foreach (var shard in manifest.Shards) shardBytes.Add((shard, (await store.GetAsync($"datasets/{dataset}/{shard.File}")).Data));
        return SiloArithmetic.Run(() =>
        {
            var encoder = FrozenEncoders.FromConfig(Config().Stage1!.Params);
            try
            {
                var shardEncoder = new ShardEncoder(encoder, options);
                var expected = new List<byte[]>();
                foreach (var (shard, bytes) in shardBytes)
                {
                    using var encoded = shardEncoder.Encode(manifest.ReadShard(shard, bytes), manifest.Classes.Count);
                    Assert.True(encoded.Skipped.Count == 0, $"the in-process encode skipped images of {shard.File}: " +
                        string.Join("; ", encoded.Skipped.Select(s => $"{s.Name}: {s.Reason}")));
                    expected.Add(encoded.Bytes);
                }
                return expected;
            }
            finally
            {
                (encoder as IDisposable)?.Dispose();
            }
        });
    }

    /// <summary>The stored latent shards equal the in-process encode byte for byte; a difference names the shard, the first
    /// differing byte and how many latent values differ, and by how much at most.</summary>
    public static void AssertSameShards(IReadOnlyList<byte[]> expected, IReadOnlyList<byte[]> stored)
    {
        Assert.Equal(expected.Count, stored.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var offset = expected[i].AsSpan().CommonPrefixLength(stored[i]);
            if (offset == expected[i].Length && offset == stored[i].Length) continue;
            using var scope = NewDisposeScope();
            var detail = "";
            try
            {
                using var want = LatentShard.Read(expected[i], "in-process shard");
                using var got = LatentShard.Read(stored[i], "stored shard");
                var difference = want.Latents.to(ScalarType.Float64).sub(got.Latents.to(ScalarType.Float64)).abs();
                detail = $"; {difference.ne(0).sum().item<long>()} of {difference.numel()} latent values differ, at most by {difference.max().item<double>():G6}";
            }
            catch (Exception error) when (error is InvalidDataException or ArgumentException)
            {
                detail = $"; a shard does not read back: {error.Message}";
            }
            Assert.Fail($"latent shard {i} differs from the in-process encode from byte {offset} ({expected[i].Length} bytes expected, {stored[i].Length} stored){detail}");
        }
    }

    /// <summary>Every stored latent (both views when flipped) as float64 <c>[n, C, H, W]</c>.</summary>
    public static Tensor AllLatents(IEnumerable<byte[]> shards)
    {
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        foreach (var bytes in shards)
        {
            using var shard = LatentShard.Read(bytes, "latent shard");
            parts.Add(shard.Latents.to(ScalarType.Float64));
            if (shard.FlippedLatents is not null) parts.Add(shard.FlippedLatents.to(ScalarType.Float64));
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }
}
