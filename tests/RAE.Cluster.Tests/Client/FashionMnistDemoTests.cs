using System.IO.Compression;
using System.Text.Json;
using RAE.Client.Commands;
using RAE.Models.IO;
using SixLabors.ImageSharp;

namespace RAE.Cluster.Tests.Client;

/// <summary>
/// `rae demo` on Fashion-MNIST-format IDX files the test writes (2 train and 2 test images per class, each class a
/// different bar pattern), shrunk to 2 training steps per stage: every stage runs as a job of the in-process silo and
/// leaves its files.
/// </summary>
public sealed class FashionMnistDemoTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rae-fmnist-demo-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task TinyDemoRunsEveryStageAndWritesTheGridCurvesNpzAndFiniteFds()
    {
        var idx = Path.Combine(_folder, "idx");
        WriteIdxSplit(idx, "train", perClass: 2, seed: 1);
        WriteIdxSplit(idx, "t10k", perClass: 2, seed: 2);

        var (exitCode, output, error) = await Cli.RunAsync("demo", "--json", "--data", Path.Combine(_folder, "data"), "--fashion-mnist", idx,
            "--train-per-class", "2", "--test-per-class", "2", "--samples-per-class", "1",
            "--set-stage1", "training.max_steps=2", "--set-stage1", "training.global_batch_size=4",
            "--set-stage2", "training.max_steps=2", "--set-stage2", "training.global_batch_size=4", "--set-stage2", "sampler.params.num_steps=2",
            "--set-stage2", "eval.eval_interval=2", "--set-stage2", "eval.num_samples=10");
        Assert.True(exitCode == 0, $"exit {exitCode}: {error}\n{output}");

        using var report = JsonDocument.Parse(output);
        var root = report.RootElement;
        var stages = root.GetProperty("stages").EnumerateArray().Select(stage => stage.GetProperty("name").GetString() ?? "").ToArray();
        Assert.Equal(["datasets", "encode", "stage1", "stage2", "sample", "sample-untrained", "eval"], stages);
        Assert.All(root.GetProperty("stages").EnumerateArray(), stage => Assert.True(stage.GetProperty("seconds").GetDouble() >= 0 && stage.GetProperty("cpuSeconds").GetDouble() >= 0));
        Assert.True(root.GetProperty("totalCpuSeconds").GetDouble() > 0);
        var trained = root.GetProperty("fdResnet18").GetProperty("trained").GetDouble();
        var untrained = root.GetProperty("fdResnet18").GetProperty("untrained").GetDouble();
        Assert.True(double.IsFinite(trained) && trained >= 0, $"trained FD {trained}");
        Assert.True(double.IsFinite(untrained) && untrained >= 0, $"untrained FD {untrained}");
        Assert.Equal("T-shirt/top", root.GetProperty("classes")[0].GetString());

        // The Stage 2 job evaluated online at its last step (eval_interval 2) against the test subset: 10 samples scored.
        var online = Assert.Single(root.GetProperty("stage2Evaluations").EnumerateArray());
        Assert.Equal((2L, "fd_resnet18", 10), (online.GetProperty("step").GetInt64(), online.GetProperty("metric").GetString(), online.GetProperty("images").GetInt32()));
        Assert.True(double.IsFinite(online.GetProperty("value").GetDouble()) && online.GetProperty("value").GetDouble() >= 0, online.ToString());

        var files = root.GetProperty("files").EnumerateObject().ToDictionary(file => file.Name, file => file.Value.GetString()!);
        foreach (var key in new[] { "grid", "untrained-grid", "npz", "stage1-loss-curve", "stage2-loss-curve", "stage1-metrics", "stage2-metrics", "stage2-eval-curve", "decoder", "statistics", "summary" })
            Assert.True(files.ContainsKey(key) && File.Exists(files[key]), $"file '{key}' missing: {string.Join(", ", files.Select(f => f.Key + "=" + f.Value))}");

        // One row per class of 32-px samples scaled by 2, each class name in a 110-px column at the left.
        var grid = Image.Identify(files["grid"]);
        Assert.Equal((110 + 66 + 2, 10 * 66 + 2), (grid.Width, grid.Height));
        Assert.Equal(2, File.ReadAllLines(files["stage2-metrics"]).Length);
        Assert.NotNull(Image.Identify(files["stage1-loss-curve"]));
        using (var reader = NpzReader.Open(files["npz"]))
            Assert.Equal([10L, 32, 32, 3], reader.GetHeader(Npz.ImagesKey).Shape);
        Assert.Equal("uint8 [10, 32, 32, 3]", root.GetProperty("npzArray").GetString());
    }

    [Fact]
    public async Task MissingIdxFilesAreNamedWithTheDebianPackage()
    {
        var idx = Path.Combine(_folder, "partial");
        WriteIdxSplit(idx, "train", perClass: 1, seed: 1);

        var (exitCode, _, error) = await Cli.RunAsync("demo", "--data", Path.Combine(_folder, "data"), "--fashion-mnist", idx);

        Assert.Equal(2, exitCode);
        Assert.Contains("missing t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz", error);
        Assert.Contains("apt-get install dataset-fashion-mnist", error);
    }

    /// <summary>Gzipped IDX files of 28x28 images: class c is c+1 vertical bars (plus noise), labels in shuffled order.</summary>
    private static void WriteIdxSplit(string folder, string split, int perClass, int seed)
    {
        Directory.CreateDirectory(folder);
        var random = new Random(seed);
        var labels = Enumerable.Range(0, 10 * perClass).Select(i => (byte)(i % 10)).OrderBy(_ => random.Next()).ToArray();
        var pixels = new byte[labels.Length * 28 * 28];
        for (var n = 0; n < labels.Length; n++)
            for (var y = 0; y < 28; y++)
                for (var x = 0; x < 28; x++)
                    pixels[(n * 28 + y) * 28 + x] = (byte)((x * (labels[n] + 1) / 28 % 2 == 0 ? 200 : 20) + random.Next(30));
        WriteIdx(Path.Combine(folder, $"{split}-images-idx3-ubyte.gz"), 0x0803, [labels.Length, 28, 28], pixels);
        WriteIdx(Path.Combine(folder, $"{split}-labels-idx1-ubyte.gz"), 0x0801, [labels.Length], labels);
    }

    private static void WriteIdx(string path, int magic, int[] dimensions, byte[] data)
    {
        using var file = new GZipStream(File.Create(path), CompressionLevel.Fastest);
        using var writer = new BinaryWriter(file);
        foreach (var value in new[] { magic }.Concat(dimensions))
            writer.Write(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value));
        writer.Write(data);
    }
}
