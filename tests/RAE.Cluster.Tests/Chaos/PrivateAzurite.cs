using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Chaos;

/// <summary>
/// An Azurite of the chaos suite's own (infra/azurite.sh on free loopback ports and a temporary data folder), so that
/// pausing it (SIGSTOP, then SIGCONT) never stalls the shared Azurite other tests use. Disposing stops it and deletes
/// its data.
/// </summary>
internal sealed class PrivateAzurite : IAsyncDisposable
{
    private const int SignalContinue = 18; // SIGCONT on Linux
    private const int SignalStop = 19; // SIGSTOP on Linux

    private readonly string _script;
    private readonly Dictionary<string, string> _environment;
    private readonly string _dataFolder;

    private PrivateAzurite(string script, int blobPort, int queuePort, int tablePort)
    {
        _script = script;
        _dataFolder = Path.Combine(Path.GetTempPath(), "rae-chaos-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        _environment = new Dictionary<string, string>
        {
            ["AZURITE_BLOB_PORT"] = blobPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["AZURITE_QUEUE_PORT"] = queuePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["AZURITE_TABLE_PORT"] = tablePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["AZURITE_DATA_DIR"] = _dataFolder,
            ["AZURITE_START_TIMEOUT_S"] = "120",
        };
        BlobConnectionString = AzureBlobStoreOptions.AzuriteConnectionString("127.0.0.1", blobPort);
        ClusterConnectionString = BlobConnectionString + $"TableEndpoint=http://127.0.0.1:{tablePort}/devstoreaccount1;";
    }

    public string BlobConnectionString { get; }

    /// <summary>Blob and table endpoints, as a cluster-mode silo needs them.</summary>
    public string ClusterConnectionString { get; }

    public int ProcessId { get; private set; }

    public static async Task<PrivateAzurite> StartAsync()
    {
        var ports = FreeLoopbackPorts(3);
        var azurite = new PrivateAzurite(FindScript(), ports[0], ports[1], ports[2]);
        await azurite.RunScriptAsync("install", TimeSpan.FromMinutes(5));
        await azurite.RunScriptAsync("start", TimeSpan.FromMinutes(3));
        var pid = await File.ReadAllTextAsync(Path.Combine(azurite._dataFolder, "azurite.pid"));
        azurite.ProcessId = int.Parse(pid.Trim(), System.Globalization.CultureInfo.InvariantCulture);
        return azurite;
    }

    /// <summary>Freezes the Azurite process for <paramref name="duration"/>: every storage call hangs, then goes on.</summary>
    public async Task PauseAsync(TimeSpan duration)
    {
        Signal(SignalStop);
        try
        {
            await Task.Delay(duration);
        }
        finally
        {
            Signal(SignalContinue);
        }
    }

    private void Signal(int signal)
    {
        if (Kill(ProcessId, signal) != 0)
            throw new InvalidOperationException($"kill({ProcessId}, {signal}) failed with errno {Marshal.GetLastWin32Error()}");
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int processId, int signal);

    public async ValueTask DisposeAsync()
    {
        if (ProcessId != 0) Kill(ProcessId, SignalContinue); // never leave it frozen
        try
        {
            await RunScriptAsync("stop", TimeSpan.FromMinutes(1));
        }
        finally
        {
            try
            {
                if (Directory.Exists(_dataFolder)) Directory.Delete(_dataFolder, recursive: true);
            }
            catch (IOException)
            {
                // A file still open; the temporary folder is left to the OS.
            }
        }
    }

    private async Task RunScriptAsync(string command, TimeSpan limit)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(_script);
        start.ArgumentList.Add(command);
        foreach (var (key, value) in _environment) start.Environment[key] = value;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not run {_script}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{_script} {command}' did not finish within {limit.TotalSeconds:0} s");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"'{_script} {command}' exited with {process.ExitCode}: {await stdout}{await stderr}");
    }

    private static int[] FreeLoopbackPorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            foreach (var listener in listeners) listener.Start();
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners) listener.Stop();
        }
    }

    private static string FindScript()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            var candidate = Path.Combine(folder.FullName, "infra", "azurite.sh");
            if (File.Exists(candidate)) return candidate;
        }
        throw new InvalidOperationException($"infra/azurite.sh was not found above {AppContext.BaseDirectory}");
    }
}
