using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Silo;

namespace RAE.Cluster.Tests;

public sealed class SiloHostTests
{
    [Fact]
    public async Task DashboardAndJsonEndpointsAnswerOnTheSilosWebPort()
    {
        var dataFolder = Path.Combine(Path.GetTempPath(), "rae-silo-test-" + Guid.NewGuid().ToString("N")[..8]);
        var (siloPort, gatewayPort, webPort) = (FreePort(), FreePort(), FreePort());
        await using var app = RaeSiloHost.Build(overrides: new Dictionary<string, string?>
        {
            ["Rae:Silo:DataFolder"] = dataFolder,
            ["Rae:Silo:SiloPort"] = siloPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Rae:Silo:GatewayPort"] = gatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Rae:Silo:WebPort"] = webPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Rae:Silo:ClusterId"] = "silo-host-test",
        });
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{webPort}"), Timeout = TimeSpan.FromSeconds(30) };
            var page = await http.GetStringAsync("/dashboard/");
            Assert.Contains("<html", page, StringComparison.OrdinalIgnoreCase);

            // The dashboard refreshes its counters periodically; the silo shows up within a few seconds.
            var deadline = DateTime.UtcNow.AddSeconds(20);
            JsonElement hosts;
            do
            {
                using var counters = JsonDocument.Parse(await http.GetStringAsync("/dashboard/DashboardCounters"));
                hosts = counters.RootElement.GetProperty("hosts").Clone();
                if (hosts.GetArrayLength() > 0) break;
                await Task.Delay(200);
            } while (DateTime.UtcNow < deadline);
            Assert.Equal(1, hosts.GetArrayLength());
            Assert.Equal("Active", hosts[0].GetProperty("status").GetString());

            using var silo = JsonDocument.Parse(await http.GetStringAsync("/api/silo"));
            Assert.Equal("cpu", silo.RootElement.GetProperty("devices")[0].GetString());
            using var jobs = JsonDocument.Parse(await http.GetStringAsync("/api/jobs"));
            Assert.Equal(JsonValueKind.Array, jobs.RootElement.ValueKind);
            var missing = await http.GetAsync("/api/jobs/train-nope");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Contains("'train-nope' is unknown", await missing.Content.ReadAsStringAsync());

            await JobsListAndShowStateAndKindByName(http, app.Services.GetRequiredService<IGrainFactory>());
        }
        finally
        {
            await app.StopAsync();
            try { Directory.Delete(dataFolder, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>A finished tiny training job reads "Completed" and "Training" in /api/jobs and /api/jobs/{id}, never enum numbers.</summary>
    private static async Task JobsListAndShowStateAndKindByName(HttpClient http, IGrainFactory grains)
    {
        var jobId = await grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(new TrainingJobSpec
        {
            Workload = TinyMlpOptions.WorkloadName,
            GlobalBatchSize = 8,
            Steps = 2,
        });
        var deadline = DateTime.UtcNow.AddSeconds(60);
        string listed;
        JsonElement job;
        do
        {
            listed = await http.GetStringAsync("/api/jobs");
            using var jobs = JsonDocument.Parse(listed);
            job = jobs.RootElement.EnumerateArray().Single(j => j.GetProperty("jobId").GetString() == jobId).Clone();
            if (job.GetProperty("state").ValueKind == JsonValueKind.String && job.GetProperty("state").GetString() == "Completed") break;
            await Task.Delay(200);
        } while (DateTime.UtcNow < deadline);
        Assert.True(job.GetProperty("state").ValueKind == JsonValueKind.String, listed);
        Assert.Equal("Completed", job.GetProperty("state").GetString());
        Assert.Equal("Training", job.GetProperty("kind").GetString());

        using (var page = JsonDocument.Parse(await http.GetStringAsync("/api/jobs?limit=1")))
            Assert.Equal(jobId, Assert.Single(page.RootElement.EnumerateArray()).GetProperty("jobId").GetString());
        using (var after = JsonDocument.Parse(await http.GetStringAsync($"/api/jobs?after={jobId}&limit=5")))
            Assert.Empty(after.RootElement.EnumerateArray());
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/jobs?limit=0")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/jobs?after=train-nope")).StatusCode);

        var shown = await http.GetStringAsync($"/api/jobs/{jobId}");
        using var status = JsonDocument.Parse(shown);
        Assert.Equal("Completed", status.RootElement.GetProperty("state").GetString());
        Assert.Equal(2, status.RootElement.GetProperty("step").GetInt64());
        Assert.Equal(TinyMlpOptions.WorkloadName, status.RootElement.GetProperty("spec").GetProperty("workload").GetString());
    }

    [Theory]
    [InlineData("Rae:Silo:WebPort", "70000", "WebPort 70000 is outside 1..65535")]
    [InlineData("Rae:Silo:ClusterMode", "Azure", "StorageConnectionString is required when ClusterMode is Azure")]
    [InlineData("Rae:Silo:Devices:0", "tpu", "Devices entry 'tpu' is not a device")]
    [InlineData("Rae:Silo:ThreadsPerRank", "0", "ThreadsPerRank 0 is outside 1..1024")]
    [InlineData("Rae:Silo:BindAddress", "localhost-ish", "BindAddress 'localhost-ish' is not an IP address")]
    [InlineData("Rae:Silo:ClusterMode", "Cloudy", "Rae:Silo:ClusterMode")]
    [InlineData("Rae:Silo:MembershipTable", "bad-table", "MembershipTable 'bad-table' is not an Azure table name")]
    [InlineData("Rae:Silo:GrainStateContainer", "Upper", "GrainStateContainer 'Upper' is not a blob container name")]
    [InlineData("Rae:Silo:Membership:ProbeTimeoutSeconds", "0", "Rae:Silo:Membership:ProbeTimeoutSeconds 0 is outside")]
    [InlineData("Rae:Silo:Membership:NumMissedProbesLimit", "0", "Rae:Silo:Membership:NumMissedProbesLimit 0 is outside 1..100")]
    [InlineData("Rae:Silo:Membership:NumProbedSilos", "-1", "Rae:Silo:Membership:NumProbedSilos -1 is outside 1..100")]
    public void BadSettingStopsStartUpWithAMessageNamingIt(string key, string value, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.Build(overrides: new Dictionary<string, string?> { [key] = value }));
        Assert.Contains(expected, string.Join(" ", error.Failures));
    }

    [Fact]
    public void UnsetDevicesMeanOneCpuAndGivenDevicesReplaceIt()
    {
        var defaults = RaeSiloHost.ReadOptions(Section(new Dictionary<string, string?>()));
        Assert.Equal(["cpu"], defaults.Devices);
        var given = RaeSiloHost.ReadOptions(Section(new Dictionary<string, string?> { ["Devices:0"] = "cuda:0", ["Devices:1"] = "cuda:1" }));
        Assert.Equal(["cuda:0", "cuda:1"], given.Devices);
    }

    [Fact]
    public void MembershipSettingsReachOrleansAndUnsetOnesKeepItsDefaults()
    {
        var options = RaeSiloHost.ReadOptions(Section(new Dictionary<string, string?>
        {
            ["Membership:ProbeTimeoutSeconds"] = "1.5",
            ["Membership:NumVotesForDeathDeclaration"] = "1",
            ["Membership:ExtendProbeTimeoutDuringDegradation"] = "false",
        }));
        var membership = new Orleans.Configuration.ClusterMembershipOptions();
        var defaults = new Orleans.Configuration.ClusterMembershipOptions();
        options.Membership.ApplyTo(membership);
        Assert.Equal(TimeSpan.FromSeconds(1.5), membership.ProbeTimeout);
        Assert.Equal(1, membership.NumVotesForDeathDeclaration);
        Assert.False(membership.ExtendProbeTimeoutDuringDegradation);
        Assert.Equal(defaults.NumMissedProbesLimit, membership.NumMissedProbesLimit);
        Assert.Equal(defaults.TableRefreshTimeout, membership.TableRefreshTimeout);
        Assert.True(RaeSiloHost.ReadOptions(Section(new Dictionary<string, string?>())).Membership.IsEmpty);

        var contradictory = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.ReadOptions(Section(new Dictionary<string, string?>
        {
            ["Membership:NumProbedSilos"] = "2",
            ["Membership:NumVotesForDeathDeclaration"] = "3",
        })));
        Assert.Contains("NumVotesForDeathDeclaration (3) exceeds NumProbedSilos (2)", string.Join(" ", contradictory.Failures));
    }

    private static Microsoft.Extensions.Configuration.IConfiguration Section(Dictionary<string, string?> values) =>
        new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(values).Build();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
