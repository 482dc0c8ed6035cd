using System.Diagnostics;
using System.Net.Sockets;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Storage;

/// <summary>
/// Makes sure Azurite answers on the blob port (AZURITE_BLOB_PORT, default 10000): uses one that already runs, or
/// installs and starts it through infra/azurite.sh. If that fails the fixture throws, so every Azure test fails with
/// the script's output rather than being skipped. An Azurite started here is left running for other test classes;
/// `infra/azurite.sh stop` ends it.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    public string Host { get; } = "127.0.0.1";

    public int BlobPort { get; } = int.TryParse(Environment.GetEnvironmentVariable("AZURITE_BLOB_PORT"), out var port) ? port : 10000;

    public string ConnectionString => AzureBlobStoreOptions.AzuriteConnectionString(Host, BlobPort);

    /// <summary>Table port (AZURITE_TABLE_PORT, default 10002), used by Azure Table clustering.</summary>
    public int TablePort { get; } = int.TryParse(Environment.GetEnvironmentVariable("AZURITE_TABLE_PORT"), out var port) ? port : 10002;

    /// <summary>Blob and table endpoints: what a cluster-mode silo (Azure Table membership, Azure Blob grain state) needs.</summary>
    public string ClusterConnectionString => ConnectionString + $"TableEndpoint=http://{Host}:{TablePort}/devstoreaccount1;";

    public async Task InitializeAsync()
    {
        if (await PortAnswersAsync(Host, BlobPort)) return;

        var script = FindScript();
        var install = await RunScriptAsync(script, "install", TimeSpan.FromMinutes(5));
        var start = install.ExitCode == 0 ? await RunScriptAsync(script, "start", TimeSpan.FromMinutes(2)) : install;
        if (start.ExitCode != 0 || !await PortAnswersAsync(Host, BlobPort))
        {
            throw new InvalidOperationException(
                $"Azurite is required by the Azure blob store tests and could not be started on {Host}:{BlobPort} "
                + $"('{script} install' then 'start' exited with {start.ExitCode}). Output:\n{install.Output}\n{start.Output}");
        }
    }

    public Task DisposeAsync() => Task.CompletedTask;

    internal static async Task<bool> PortAnswersAsync(string host, int port)
    {
        using var client = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await client.ConnectAsync(host, port, timeout.Token);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    private static string FindScript()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            var candidate = Path.Combine(folder.FullName, "infra", "azurite.sh");
            if (File.Exists(candidate)) return candidate;
        }

        throw new InvalidOperationException(
            $"Azurite is not answering on the blob port and infra/azurite.sh was not found above {AppContext.BaseDirectory}");
    }

    private static async Task<(int ExitCode, string Output)> RunScriptAsync(string script, string command, TimeSpan limit)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(command);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not run {script}");
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
            return (-1, $"'{script} {command}' did not finish within {limit}");
        }

        return (process.ExitCode, $"{await stdout}{await stderr}".Trim());
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}
