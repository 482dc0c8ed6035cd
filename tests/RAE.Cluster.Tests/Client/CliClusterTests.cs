using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using RAE.Models.IO;
using RAE.Silo;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Cluster.Tests.Client;

/// <summary>One embedded silo (RaeSiloHost on free loopback ports) that the CLI connects to through its gateway.</summary>
public sealed class CliSiloFixture : IAsyncLifetime
{
    private WebApplication? _app;

    public string DataFolder { get; } = Path.Combine(Path.GetTempPath(), "rae-cli-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public int GatewayPort { get; } = FreePort();
    public string Gateway => GatewayPort.ToString(CultureInfo.InvariantCulture);
    /// <summary>The silo's web port (dashboard, job pages, JSON) on loopback.</summary>
    public int WebPort { get; } = FreePort();
    public IServiceProvider Services => _app?.Services ?? throw new InvalidOperationException("The silo has not started.");

    public async Task InitializeAsync()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Rae:Silo:DataFolder"] = DataFolder,
            ["Rae:Silo:SiloPort"] = FreePort().ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:GatewayPort"] = Gateway,
            ["Rae:Silo:WebPort"] = WebPort.ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:ClusterId"] = "cli-test",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        // Jobs of these tests (the job pages' sampling job) read the repository's fixtures.
        for (var i = 0; i < RaeTestSiloConfigurator.TestDataRoots.Length; i++) settings[$"Rae:Silo:DataRoots:{i}"] = RaeTestSiloConfigurator.TestDataRoots[i];
        _app = RaeSiloHost.Build(overrides: settings);
        await _app.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        try { Directory.Delete(DataFolder, recursive: true); } catch (IOException) { }
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public sealed class CliClusterTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>
{
    private Task<(int ExitCode, string Output, string Error)> Rae(params string[] args) =>
        Cli.RunAsync([.. args, "--gateway", silo.Gateway, "--cluster-id", "cli-test"]);

    [Fact]
    public async Task ClusterStatusJsonListsTheSiloWithItsCpuRank()
    {
        var (exitCode, output, error) = await Rae("cluster", "status", "--json");
        Assert.True(exitCode == 0, error);
        using var report = JsonDocument.Parse(output);
        var silos = report.RootElement.GetProperty("silos");
        Assert.Equal(1, silos.GetArrayLength());
        Assert.Equal("Active", silos[0].GetProperty("status").GetString());
        Assert.Equal("cpu", silos[0].GetProperty("devices")[0].GetString());
        var ranks = silos[0].GetProperty("ranks");
        Assert.Equal(1, ranks.GetArrayLength());
        Assert.Equal("cpu", ranks[0].GetProperty("device").GetString());
        Assert.EndsWith("|rank:cpu", ranks[0].GetProperty("key").GetString());
    }

    [Fact]
    public async Task ClusterStatusShowsTheWorkloadsTheSiloOffersInTextAndJson()
    {
        var (exitCode, output, error) = await Rae("cluster", "status");
        Assert.True(exitCode == 0, error);
        Assert.Contains("workloads", output);
        Assert.Matches(@"training\s+dit-dh\s+1 silo\(s\): \S+ \[cpu\]", output);
        Assert.Matches(@"training\s+rae-decoder\s+1 silo\(s\)", output);
        Assert.Matches(@"training\s+tiny-mlp\s+1 silo\(s\)", output);
        Assert.Matches(@"sampling\s+rae\s+1 silo\(s\)", output);

        var (jsonExit, json, jsonError) = await Rae("cluster", "status", "--json");
        Assert.True(jsonExit == 0, jsonError);
        using var report = JsonDocument.Parse(json);
        var offers = report.RootElement.GetProperty("workloads").EnumerateArray()
            .Select(o => (Kind: o.GetProperty("kind").GetString(), Workload: o.GetProperty("workload").GetString(), Placements: o.GetProperty("placements")))
            .ToList();
        Assert.Equal([("Training", "dit-dh"), ("Training", "rae-decoder"), ("Training", "tiny-mlp"), ("Sampling", "rae")], offers.Select(o => (o.Kind, o.Workload)));
        Assert.All(offers, o => Assert.Equal("cpu", o.Placements[0].GetProperty("devices")[0].GetString()));
    }

    [Fact]
    public async Task UnknownJobIdExitsOneNamingIt()
    {
        foreach (var command in new[] { new[] { "jobs", "show", "train-does-not-exist" }, ["jobs", "cancel", "train-does-not-exist"], ["checkpoints", "list", "train-does-not-exist"] })
        {
            var (exitCode, output, error) = await Rae(command);
            Assert.Equal(1, exitCode);
            Assert.Contains("'train-does-not-exist' is unknown", error);
            Assert.Equal("", output);
        }
    }

    [Fact]
    public async Task TrainWatchThenJobsListShowAndCheckpointsSeeTheCompletedJob()
    {
        var config = Cli.RepositoryFile("configs/tiny/stage2-ddt-tiny.yaml");
        var (trainExit, trainOutput, trainError) = await Rae("train", config, "--workload", "tiny-mlp", "--set", "training.max_steps=4",
            "--set", "training.ckpt_every=2", "--job-id", "train-cli-e2e", "--watch");
        Assert.True(trainExit == 0, trainError + trainOutput);
        Assert.Contains("submitted train-cli-e2e: tiny-mlp, 4 steps", trainOutput);
        Assert.Contains("step 4/4", trainOutput);
        Assert.Contains("train-cli-e2e completed at 4/4", trainOutput);

        var (listExit, listOutput, _) = await Rae("jobs", "list", "--json");
        Assert.Equal(0, listExit);
        using var jobs = JsonDocument.Parse(listOutput);
        var job = jobs.RootElement.EnumerateArray().Single(j => j.GetProperty("jobId").GetString() == "train-cli-e2e");
        Assert.Equal("Training", job.GetProperty("kind").GetString());
        Assert.Equal("Completed", job.GetProperty("state").GetString());
        Assert.Equal(4, job.GetProperty("progress").GetInt64());

        var (showExit, showOutput, _) = await Rae("jobs", "show", "train-cli-e2e", "--json");
        Assert.Equal(0, showExit);
        using var status = JsonDocument.Parse(showOutput);
        Assert.Equal(4, status.RootElement.GetProperty("step").GetInt64());
        Assert.Equal(4, status.RootElement.GetProperty("lastCheckpointStep").GetInt64());

        var (checkpointsExit, checkpointsOutput, _) = await Rae("checkpoints", "list", "train-cli-e2e", "--json");
        Assert.Equal(0, checkpointsExit);
        using var checkpoints = JsonDocument.Parse(checkpointsOutput);
        Assert.Equal([2L, 4L], checkpoints.RootElement.EnumerateArray().Select(c => c.GetProperty("step").GetInt64()));

        // The tiny-mlp worker writes its own binary format: export refuses it by name instead of writing a bogus file.
        var target = Path.Combine(silo.DataFolder, "export.safetensors");
        var (exportExit, _, exportError) = await Rae("checkpoints", "export", "train-cli-e2e", "--out", target);
        Assert.Equal(1, exportExit);
        Assert.Contains("not a safetensors container", exportError);
        Assert.False(File.Exists(target));

        var (againExit, _, againError) = await Rae("train", config, "--workload", "tiny-mlp", "--job-id", "train-cli-e2e");
        Assert.Equal(1, againExit);
        Assert.Contains("already started", againError);
    }

    [Fact]
    public async Task TrainWithAnUnknownWorkloadExitsOneNamingTheKnownOnes()
    {
        var (exitCode, _, error) = await Rae("train", Cli.RepositoryFile("configs/tiny/stage2-ddt-tiny.yaml"), "--workload", "no-such-workload");
        Assert.Equal(1, exitCode);
        Assert.Contains("Workload 'no-such-workload' is unknown", error);
        Assert.Contains("tiny-mlp", error);
    }
}

public sealed class DemoCommandTests
{
    [Fact]
    public async Task DemoWithAWorkloadTheSiloLacksExitsOneNamingIt()
    {
        var data = Path.Combine(Path.GetTempPath(), "rae-demo-test-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var (exitCode, output, error) = await Cli.RunAsync("demo", "--synthetic", "--workload", "no-such-workload", "--data", data);
            Assert.Equal(1, exitCode);
            Assert.Contains("no rank worker for workload 'no-such-workload'", error);
            Assert.Contains("dashboard http://127.0.0.1:", output);
        }
        finally
        {
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task DemoDecodesItsSamplesIntoPngsAndAnNpzWithTheSeededDecoder()
    {
        var data = Path.Combine(Path.GetTempPath(), "rae-demo-test-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            // The demo config, shrunk: 2 steps of batch 4 (a checkpoint at step 2), 2 Euler steps, 6 samples in 2 units.
            var (exitCode, output, error) = await Cli.RunAsync("demo", "--synthetic", "--data", data, "--num-samples", "6",
                "--set", "data.num_samples=8", "--set", "training.global_batch_size=4", "--set", "training.max_steps=2",
                "--set", "sampler.params.num_steps=2");
            Assert.True(exitCode == 0, $"exit {exitCode}: {error}\n{output}");

            var decoder = Path.Combine(data, "stage1", "decoder.safetensors");
            Assert.True(File.Exists(decoder), $"the demo did not write its decoder to {decoder}");
            Assert.Contains($"decoder: {decoder} (Stage 1, 64x64 px, seeded random weights", output);
            Assert.Contains("the images are noise-like", output);

            var npzLine = Regex.Match(output, @"^npz:\s+(\S+) \(arr_0 uint8 \[6, 64, 64, 3\]", RegexOptions.Multiline);
            Assert.True(npzLine.Success, output);
            var npz = npzLine.Groups[1].Value;
            using (var reader = NpzReader.Open(npz))
            {
                Assert.Equal([Npz.ImagesKey], reader.Keys);
                var header = reader.GetHeader(Npz.ImagesKey);
                Assert.Equal(TorchSharp.torch.ScalarType.Byte, header.Dtype);
                Assert.Equal([6L, 64, 64, 3], header.Shape);
                using var images = reader.ReadArray(Npz.ImagesKey);
                Assert.True(images.max().item<byte>() > images.min().item<byte>(), "decoded images must not be constant");

                var pngLine = Regex.Match(output, @"^pngs:\s+(\S+) \(6 images\)", RegexOptions.Multiline);
                Assert.True(pngLine.Success, output);
                var pngs = Directory.GetFiles(pngLine.Groups[1].Value).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
                Assert.Equal(Enumerable.Range(0, 6).Select(i => $"{i:D6}.png"), pngs);
                // Plain PNG files (not blob-store frames) holding the pixels of the matching npz row.
                using var png = Image.Load<Rgb24>(Path.Combine(pngLine.Groups[1].Value, "000004.png"));
                var pixels = new byte[64 * 64 * 3];
                png.CopyPixelDataTo(pixels);
                Assert.Equal(images[4].contiguous().data<byte>().ToArray(), pixels);
            }
        }
        finally
        {
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }
}
