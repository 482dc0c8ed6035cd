using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using RAE.Client.Commands;

namespace RAE.Client.Bench;

/// <summary>Where one silo of a benchmark cluster listens, and the silo port of its cluster's primary silo.</summary>
public sealed record SiloEndpoints(int SiloPort, int GatewayPort, int WebPort, int PrimarySiloPort)
{
    /// <summary>Three free loopback ports; the primary silo of a cluster passes its own silo port as primary.</summary>
    public static SiloEndpoints Allocate(int? primarySiloPort = null)
    {
        var ports = FreeLoopbackPorts(3);
        return new SiloEndpoints(ports[0], ports[1], ports[2], primarySiloPort ?? ports[0]);
    }

    private static int[] FreeLoopbackPorts(int count)
    {
        // Hold every listener until all are chosen so the ports differ.
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
}

/// <summary>
/// One silo as a separate OS process: this same program run as `rae bench silo`. Stopping closes the child's standard
/// input (it then shuts down cleanly) and kills it only if it does not exit in time.
/// </summary>
public sealed class SiloProcess : IAsyncDisposable
{
    public const string ReadyLine = "rae-bench-silo: ready";
    private const int KeptOutputLines = 40;

    private readonly Process _process;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Queue<string> _output = new();

    private SiloProcess(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    public string Name { get; }

    public SiloEndpoints Endpoints { get; private init; } = null!;

    /// <summary>Starts an embedded-mode silo and waits until it has joined its cluster; the exception carries its last output lines.</summary>
    public static Task<SiloProcess> StartAsync(string name, string clusterId, string dataFolder, SiloEndpoints endpoints, int threadsPerRank, TimeSpan timeout) =>
        StartAsync(name, clusterId, dataFolder, endpoints, threadsPerRank, new Dictionary<string, string>(), timeout);

    /// <summary>
    /// Starts a silo whose <paramref name="settings"/> ("Rae:Silo:..." configuration keys, for example ClusterMode=Azure
    /// or Membership:ProbeTimeoutSeconds) override the embedded-mode defaults, and waits until it has joined its cluster.
    /// </summary>
    private static bool IsSecret(string key) =>
        key.EndsWith("ConnectionString", StringComparison.OrdinalIgnoreCase) || key.EndsWith("Password", StringComparison.OrdinalIgnoreCase);

    public static async Task<SiloProcess> StartAsync(
        string name, string clusterId, string dataFolder, SiloEndpoints endpoints, int threadsPerRank,
        IReadOnlyDictionary<string, string> settings, TimeSpan timeout)
    {
        var start = SelfInvocation();
        foreach (var argument in new[]
        {
            "bench", "silo", "--cluster-id", clusterId, "--data", dataFolder,
            "--silo-port", Text(endpoints.SiloPort), "--gateway-port", Text(endpoints.GatewayPort), "--web-port", Text(endpoints.WebPort),
            "--primary-port", Text(endpoints.PrimarySiloPort), "--threads", Text(threadsPerRank),
        })
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (key, value) in settings)
        {
            if (IsSecret(key))
            {
                // Every user of the machine can read a command line; the silo reads RAE_ variables as settings.
                start.Environment["RAE_" + key.Replace(":", "__", StringComparison.Ordinal)] = value;
                continue;
            }
            start.ArgumentList.Add("--set");
            start.ArgumentList.Add($"{key}={value}");
        }
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var silo = new SiloProcess(process, name) { Endpoints = endpoints };
        process.OutputDataReceived += (_, line) => silo.Record(line.Data);
        process.ErrorDataReceived += (_, line) => silo.Record(line.Data);
        process.Exited += (_, _) => silo._ready.TrySetException(new InvalidOperationException(
            $"Silo {name} exited with code {SafeExitCode(process)} before it was ready:{Environment.NewLine}{silo.RecentOutput()}"));
        if (!process.Start())
            throw new InvalidOperationException($"Could not start silo {name} ({start.FileName} {string.Join(' ', start.ArgumentList)}).");
        silo.ProcessId = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await silo._ready.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            await silo.DisposeAsync();
            throw new TimeoutException($"Silo {name} was not ready after {timeout.TotalSeconds:0} s:{Environment.NewLine}{silo.RecentOutput()}");
        }
        catch
        {
            await silo.DisposeAsync();
            throw;
        }
        return silo;
    }

    /// <summary>The OS process id of the silo (kept after disposal).</summary>
    public int ProcessId { get; private set; }

    /// <summary>True once the process has ended; a disposed silo has always ended (disposal waits for it or kills it).</summary>
    public bool HasExited
    {
        get
        {
            try
            {
                return _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true;
            }
        }
    }

    /// <summary>Kills the silo at once (SIGKILL on Unix): no shutdown, no goodbye to the cluster, as when a machine dies.</summary>
    public async Task KillAsync()
    {
        if (HasExited) return;
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync(CancellationToken.None);
    }

    /// <summary>
    /// Asks the silo to stop (closes its standard input, which `bench silo` takes as the signal to shut down cleanly) and
    /// waits up to <paramref name="grace"/>; kills it after that. True when it stopped by itself.
    /// </summary>
    public async Task<bool> StopAsync(TimeSpan grace)
    {
        if (HasExited) return true;
        _process.StandardInput.Close();
        using var deadline = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
            return false;
        }
    }

    public string RecentOutput()
    {
        lock (_output) return string.Join(Environment.NewLine, _output);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.StandardInput.Close();
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                try
                {
                    await _process.WaitForExitAsync(grace.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync(CancellationToken.None);
                }
            }
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        _process.Dispose();
    }

    private void Record(string? line)
    {
        if (line is null) return;
        if (line.Contains(ReadyLine, StringComparison.Ordinal)) _ready.TrySetResult();
        lock (_output)
        {
            _output.Enqueue(line);
            while (_output.Count > KeptOutputLines) _output.Dequeue();
        }
    }

    /// <summary>
    /// How to run this program again: the `rae` app host when that is what runs, otherwise `dotnet rae.dll` (for
    /// example under a test host, where the CLI runs in-process).
    /// </summary>
    private static ProcessStartInfo SelfInvocation()
    {
        var assembly = typeof(SiloProcess).Assembly.Location;
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == Path.GetFileNameWithoutExtension(assembly))
            return new ProcessStartInfo(current);
        var host = current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet"
            ? current
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(host);
        start.ArgumentList.Add(assembly);
        if (!File.Exists(Path.ChangeExtension(assembly, ".runtimeconfig.json")))
            throw new UsageException($"{Path.ChangeExtension(assembly, ".runtimeconfig.json")} is missing; `bench cluster` starts silos with `dotnet {assembly}`.");
        return start;
    }

    private static string SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode.ToString(CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
