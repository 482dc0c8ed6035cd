using System.Net;
using System.Net.Sockets;
using RAE.Client.Commands;

namespace RAE.Cluster.Tests.Client;

/// <summary>Runs `rae` command lines in-process and captures what they print.</summary>
internal static class Cli
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exitCode = await CommandLine.RunAsync(args, output, error);
        return (exitCode, output.ToString(), error.ToString());
    }

    /// <summary>A file of the repository (configs/...), found by walking up from the test binaries.</summary>
    public static string RepositoryFile(string relativePath)
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            var candidate = Path.Combine(folder.FullName, relativePath);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"'{relativePath}' is not above {AppContext.BaseDirectory}.");
    }

    /// <summary>A loopback port that nothing listens on (taken and released).</summary>
    public static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
