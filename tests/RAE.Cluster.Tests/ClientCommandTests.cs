using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.GrainInterfaces;
using RAE.Silo;

namespace RAE.Cluster.Tests;

/// <summary>The `rae cluster status` and `rae jobs ...` commands against a real silo process host on loopback ports.</summary>
public sealed class ClientCommandTests
{
    [Fact]
    public async Task ClusterAndJobCommandsReportWhatTheSiloKnows()
    {
        var dataFolder = Path.Combine(Path.GetTempPath(), "rae-client-test-" + Guid.NewGuid().ToString("N")[..8]);
        var (siloPort, gatewayPort, webPort) = (FreePort(), FreePort(), FreePort());
        await using var app = RaeSiloHost.Build(overrides: new Dictionary<string, string?>
        {
            ["Rae:Silo:DataFolder"] = dataFolder,
            ["Rae:Silo:SiloPort"] = siloPort.ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:GatewayPort"] = gatewayPort.ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:WebPort"] = webPort.ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:ClusterId"] = "client-test",
        });
        await app.StartAsync();
        try
        {
            var gateway = $"127.0.0.1:{gatewayPort}";
            string jobId;
            var connection = new ClusterConnectionOptions { Gateways = ClusterConnectionOptions.ParseGateways(gateway), ClusterId = "client-test" };
            await using (var client = await RaeClient.ConnectAsync(connection))
            {
                jobId = await client.SubmitTrainingAsync(new TrainingJobSpec { Ranks = 1, GlobalBatchSize = 4, Steps = 3, CheckpointInterval = 1 });
                var coordinator = client.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while ((await coordinator.GetStatus()).State != JobState.Completed && DateTime.UtcNow < deadline) await Task.Delay(100);
            }

            var (code, output, error) = await RunAsync("cluster", "status", "--gateway", gateway, "--cluster-id", "client-test");
            Assert.True(code == 0, error);
            Assert.Contains("1 silo(s), 1 rank(s), 0 active job(s)", output);
            Assert.Matches(@"Active\s+cpu\s+0/1", output);

            (code, output, error) = await RunAsync("jobs", "list", "--gateway", gateway, "--cluster-id", "client-test", "--json");
            Assert.True(code == 0, error);
            using (var jobs = JsonDocument.Parse(output))
            {
                var job = Assert.Single(jobs.RootElement.EnumerateArray());
                Assert.Equal(jobId, job.GetProperty("jobId").GetString());
                Assert.Equal("Completed", job.GetProperty("state").GetString());
            }

            (code, output, error) = await RunAsync("jobs", "list", "--limit", "1", "--gateway", gateway, "--cluster-id", "client-test");
            Assert.True(code == 0, error);
            Assert.Contains(jobId, output);
            Assert.Contains($"next page: rae jobs list --limit 1 --after {jobId}", output);
            (code, output, error) = await RunAsync("jobs", "list", "--after", jobId, "--gateway", gateway, "--cluster-id", "client-test");
            Assert.True(code == 0, error);
            Assert.Contains($"no jobs after {jobId}", output);

            (code, output, error) = await RunAsync("jobs", "show", jobId, "--gateway", gateway, "--cluster-id", "client-test");
            Assert.True(code == 0, error);
            Assert.Contains("state      Completed", output);
            Assert.Contains("step 3/3", output);
            Assert.Contains("checkpoint step 3", output);
            Assert.Contains("last step  3: loss", output);
            var shownNorm = System.Text.RegularExpressions.Regex.Match(output, @"last step  3: loss \S+, grad norm (\d+\.\d{4}), lr");
            Assert.True(shownNorm.Success, output);
            Assert.True(double.Parse(shownNorm.Groups[1].Value, CultureInfo.InvariantCulture) > 0, output);

            (code, output, error) = await RunAsync("jobs", "watch", jobId, "--gateway", gateway, "--cluster-id", "client-test");
            Assert.True(code == 0, error);
            Assert.Matches(@"step 3/3  loss \S+  grad norm \d+\.\d{3}  lr", output);

            (code, _, error) = await RunAsync("jobs", "show", "train-nope", "--gateway", gateway, "--cluster-id", "client-test");
            Assert.Equal(1, code);
            Assert.Contains("'train-nope' is unknown", error);

            (code, _, error) = await RunAsync("jobs", "show", "--gateway", gateway, "--cluster-id", "client-test", "--colour");
            Assert.Equal(2, code);
        }
        finally
        {
            await app.StopAsync();
            try { Directory.Delete(dataFolder, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task UnreachableClusterGivesExitCodeThree()
    {
        var (code, _, error) = await RunAsync("jobs", "list", "--gateway", $"127.0.0.1:{FreePort()}", "--connect-timeout", "2");
        Assert.Equal(3, code);
        Assert.Contains("No RAE silo answers at the gateway 127.0.0.1:", error);
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await CommandLine.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
