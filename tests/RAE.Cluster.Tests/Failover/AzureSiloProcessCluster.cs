using System.Globalization;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using RAE.Client.Bench;
using RAE.Client.Cluster;
using RAE.Cluster.Tests.Storage;

namespace RAE.Cluster.Tests.Failover;

/// <summary>
/// Silos as separate OS processes (`rae bench silo`) in Azure mode against Azurite: Azure Table membership and Azure Blob
/// grain state, each run under its own cluster id, membership table and grain-state container so runs never see each
/// other, and one shared data folder so every silo reads every checkpoint payload. Disposing kills every silo still
/// running and deletes the table, the container and the folder, whatever happened before.
/// </summary>
internal sealed class AzureSiloProcessCluster : IAsyncDisposable
{
    private static readonly TimeSpan DefaultSiloStartTimeout = TimeSpan.FromSeconds(90);

    private readonly string _connectionString;
    private readonly List<SiloProcess> _silos = [];
    private readonly IReadOnlyDictionary<string, string> _membership;
    private readonly TimeSpan _siloStartTimeout;

    private AzureSiloProcessCluster(string connectionString, IReadOnlyDictionary<string, string> membership, TimeSpan siloStartTimeout)
    {
        _connectionString = connectionString;
        _membership = membership;
        _siloStartTimeout = siloStartTimeout;
        var run = Guid.NewGuid().ToString("N")[..10];
        ClusterId = $"rae-failover-{run}";
        MembershipTable = $"raefailover{run}";
        GrainStateContainer = $"rae-failover-{run}";
        DataFolder = Path.Combine(Path.GetTempPath(), $"rae-failover-{run}");
    }

    public string ClusterId { get; }
    public string MembershipTable { get; }
    public string GrainStateContainer { get; }
    public string DataFolder { get; }

    /// <summary>In start order: <c>Silos[0]</c> started alone before the others (the primary under localhost clustering).</summary>
    public IReadOnlyList<SiloProcess> Silos => _silos;

    public RaeClient Client { get; private set; } = null!;

    public IManagementGrain Management => Client.Grains.GetGrain<IManagementGrain>(0);

    /// <summary>
    /// Membership tuned to declare a killed silo dead within seconds (Orleans' defaults take about a minute), yet with
    /// 2 s probes so that a silo starved by a busy 2-core machine is not voted out by mistake.
    /// </summary>
    public static IReadOnlyDictionary<string, string> FastFailureDetection { get; } = new Dictionary<string, string>
    {
        ["Rae:Silo:Membership:ProbeTimeoutSeconds"] = "2",
        ["Rae:Silo:Membership:NumMissedProbesLimit"] = "2",
        ["Rae:Silo:Membership:NumVotesForDeathDeclaration"] = "1",
        ["Rae:Silo:Membership:DeathVoteExpirationTimeoutSeconds"] = "20",
        ["Rae:Silo:Membership:TableRefreshTimeoutSeconds"] = "2",
        ["Rae:Silo:Membership:IAmAliveTablePublishTimeoutSeconds"] = "2",
    };

    /// <summary>Starts silo 0, then the others together, waits until the membership lists all of them, and connects a client.</summary>
    public static Task<AzureSiloProcessCluster> StartAsync(AzuriteFixture azurite, int siloCount) =>
        StartAsync(azurite.ClusterConnectionString, siloCount, FastFailureDetection, DefaultSiloStartTimeout);

    /// <summary>
    /// As above on any Azurite (blob and table endpoints in <paramref name="clusterConnectionString"/>), with the given
    /// membership settings (<c>Rae:Silo:Membership:*</c>) and the time a silo process may take to start.
    /// </summary>
    public static async Task<AzureSiloProcessCluster> StartAsync(
        string clusterConnectionString, int siloCount, IReadOnlyDictionary<string, string> membership, TimeSpan siloStartTimeout)
    {
        var cluster = new AzureSiloProcessCluster(clusterConnectionString, membership, siloStartTimeout);
        try
        {
            Directory.CreateDirectory(cluster.DataFolder);
            await cluster.StartSiloAsync(0);
            await Task.WhenAll(Enumerable.Range(1, siloCount - 1).Select(cluster.StartSiloAsync));
            cluster.Client = await RaeClient.ConnectAsync(new ClusterConnectionOptions
            {
                StorageConnectionString = cluster._connectionString,
                ClusterId = cluster.ClusterId,
                ServiceId = cluster.ClusterId, // `bench silo` uses its cluster id as service id
                MembershipTable = cluster.MembershipTable,
                ConnectTimeout = TimeSpan.FromSeconds(60),
            });
            await cluster.WaitForActiveSilosAsync(siloCount, TimeSpan.FromSeconds(60));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private Task StartSiloAsync(int index) => StartSiloAsync($"silo-{index}");

    /// <summary>Starts a silo process named <paramref name="name"/> (fresh ports) and adds it to <see cref="Silos"/>.</summary>
    public async Task<SiloProcess> StartSiloAsync(string name)
    {
        var settings = new Dictionary<string, string>(_membership)
        {
            ["Rae:Silo:ClusterMode"] = "Azure",
            ["Rae:Silo:StorageConnectionString"] = _connectionString,
            ["Rae:Silo:MembershipTable"] = MembershipTable,
            ["Rae:Silo:GrainStateContainer"] = GrainStateContainer,
            // These tests are about failover, on loopback; mutual TLS (on by default in Azure mode) has its own tests.
            ["Rae:Silo:Tls:Enabled"] = "false",
        };
        var silo = await SiloProcess.StartAsync(name, ClusterId, DataFolder, SiloEndpoints.Allocate(), threadsPerRank: 1, settings, _siloStartTimeout);
        lock (_silos)
        {
            _silos.Add(silo);
            // Keep start order for silo 0; the others started together and their order does not matter.
            _silos.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        }
        return silo;
    }

    /// <summary>
    /// Starts a new process (fresh ports, so a new silo address) in place of <paramref name="stopped"/>, which must have
    /// exited (killed, stopped, or gone on its own); it keeps the name.
    /// </summary>
    public async Task<SiloProcess> RestartAsync(SiloProcess stopped)
    {
        if (!stopped.HasExited) throw new InvalidOperationException($"Silo {stopped.Name} still runs; stop it before restarting it.");
        lock (_silos) _silos.Remove(stopped);
        await stopped.DisposeAsync();
        return await StartSiloAsync(stopped.Name);
    }

    /// <summary>The silo process listening on the port of <paramref name="address"/> (a parsable silo address or endpoint).</summary>
    public SiloProcess SiloAt(SiloAddress address) =>
        _silos.SingleOrDefault(s => s.Endpoints.SiloPort == address.Endpoint.Port)
        ?? throw new InvalidOperationException($"No silo process of this test listens on {address}.");

    public static int SiloPortOf(string parsableSiloAddress) => SiloAddress.FromParsableString(parsableSiloAddress).Endpoint.Port;

    /// <summary>Polls <see cref="IManagementGrain.GetHosts"/> until exactly <paramref name="count"/> silos are active.</summary>
    public async Task WaitForActiveSilosAsync(int count, TimeSpan timeout)
    {
        var active = await PollAsync(
            () => Management.GetHosts(onlyActive: true),
            hosts => hosts.Count == count,
            timeout);
        Assert.True(active.Count == count, $"the membership lists {active.Count} active silo(s), expected {count}");
    }

    /// <summary>Polls <see cref="IManagementGrain.GetHosts"/> until the silo on <paramref name="siloPort"/> is no longer active.</summary>
    public Task WaitUntilDeclaredDeadAsync(int siloPort, TimeSpan timeout) =>
        PollAsync(
            () => Management.GetHosts(onlyActive: true),
            hosts => hosts.Keys.All(address => address.Endpoint.Port != siloPort),
            timeout);

    /// <summary>
    /// Calls <paramref name="read"/> every 200 ms until <paramref name="done"/> holds. A call that fails or hangs (a grain
    /// on a silo that was just killed) counts as not done; at the deadline a <see cref="TimeoutException"/> names the
    /// last value or error.
    /// </summary>
    public static async Task<T> PollAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, Func<T, string>? describe = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = "no answer yet";
        while (true)
        {
            try
            {
                var value = await read().WaitAsync(TimeSpan.FromSeconds(10));
                if (done(value)) return value;
                last = describe?.Invoke(value) ?? value?.ToString() ?? "null";
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                last = $"{error.GetType().Name}: {error.Message}";
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Still waiting after {timeout.TotalSeconds:0} s; last: {last}");
            await Task.Delay(200);
        }
    }

    /// <summary>Entities of this run's membership table (one per silo plus Orleans' version row).</summary>
    public async Task<int> CountMembershipRowsAsync()
    {
        var table = new TableServiceClient(_connectionString).GetTableClient(MembershipTable);
        var rows = 0;
        await foreach (var _ in table.QueryAsync<TableEntity>()) rows++;
        return rows;
    }

    /// <summary>Names of the grain-state blobs in this run's container (the coordinator's job state among them).</summary>
    public async Task<List<string>> ListGrainStateBlobsAsync()
    {
        var names = new List<string>();
        await foreach (var blob in new BlobServiceClient(_connectionString).GetBlobContainerClient(GrainStateContainer).GetBlobsAsync())
            names.Add(blob.Name);
        return names;
    }

    /// <summary>What disposal should have removed but did not: running silo processes, the table, the container, the folder.</summary>
    public async Task<IReadOnlyList<string>> FindLeftoversAsync()
    {
        var leftovers = _silos.Where(s => IsRunning(s.ProcessId)).Select(s => $"silo process {s.Name} (pid {s.ProcessId})").ToList();
        await foreach (var _ in new TableServiceClient(_connectionString).QueryAsync(table => table.Name == MembershipTable))
            leftovers.Add($"table {MembershipTable}");
        if (await new BlobServiceClient(_connectionString).GetBlobContainerClient(GrainStateContainer).ExistsAsync())
            leftovers.Add($"container {GrainStateContainer}");
        if (Directory.Exists(DataFolder)) leftovers.Add($"folder {DataFolder}");
        return leftovers;
    }

    private static bool IsRunning(int processId)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false; // no such process
        }
    }

    /// <summary>The last output lines of every silo, for a failure message.</summary>
    public string Diagnostics() => string.Join(Environment.NewLine, _silos.Select(s =>
        $"--- {s.Name} (port {s.Endpoints.SiloPort.ToString(CultureInfo.InvariantCulture)}, {(s.HasExited ? "exited" : "running")}) ---{Environment.NewLine}{s.RecentOutput()}"));

    /// <summary>Kills the silos and deletes the run's storage; safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Client is not null) await Client.DisposeAsync();
        Client = null!;
        // Killing is enough: the run's table, container and folder are deleted below, so nothing needs a clean stop.
        foreach (var silo in _silos.ToList())
        {
            await silo.KillAsync();
            await silo.DisposeAsync();
        }
        await DeleteQuietlyAsync(() => new TableServiceClient(_connectionString).DeleteTableAsync(MembershipTable));
        await DeleteQuietlyAsync(() => new BlobServiceClient(_connectionString).GetBlobContainerClient(GrainStateContainer).DeleteIfExistsAsync());
        try
        {
            if (Directory.Exists(DataFolder)) Directory.Delete(DataFolder, recursive: true);
        }
        catch (IOException)
        {
            // A file still open somewhere; the temporary folder is left to the OS.
        }
    }

    private static async Task DeleteQuietlyAsync(Func<Task> delete)
    {
        try
        {
            await delete();
        }
        catch (Azure.RequestFailedException)
        {
            // Never created (a silo failed to start) or already gone.
        }
    }
}
