using System.Diagnostics;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Storage;

/// <summary>
/// Entry point of this test assembly when started as a child process (<c>dotnet RAE.Cluster.Tests.dll torn-put ...</c>):
/// begins a put that stalls half way, says so on stdout, and waits to be killed. The test host does not use it.
/// </summary>
public static class TornWriterProgram
{
    public const string StalledLine = "STALLED";

    public static async Task<int> Main(string[] args)
    {
        if (args is not ["torn-put", var kind, var path, var totalBytes, var stallAfter, .. var storeArgs])
        {
            await Console.Error.WriteLineAsync("this is a test assembly; as a program it only runs 'torn-put' for the storage tests");
            return 2;
        }

        IBlobStore store = kind switch
        {
            "fs" => new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = storeArgs[0] }),
            "azure" => new AzureBlobStore(new AzureBlobStoreOptions
            {
                ConnectionString = storeArgs[0],
                ContainerName = storeArgs[1],
                BlockSizeBytes = int.Parse(storeArgs[2], System.Globalization.CultureInfo.InvariantCulture),
            }),
            _ => throw new ArgumentException($"unknown store kind '{kind}'"),
        };
        var data = TestBytes.Deterministic(int.Parse(totalBytes, System.Globalization.CultureInfo.InvariantCulture), 77);
        var content = new StallingStream(data, long.Parse(stallAfter, System.Globalization.CultureInfo.InvariantCulture), () =>
        {
            // Give the blocks already handed to the store time to reach it, then tell the test to pull the plug.
            Thread.Sleep(1500);
            Console.Out.WriteLine(StalledLine);
            Console.Out.Flush();
        });
        await store.PutAsync(path, content);
        await Console.Error.WriteLineAsync("the put finished, which a stalled stream should never allow");
        return 3;
    }
}

/// <summary>Starts <see cref="TornWriterProgram"/> in a separate process and kills it (SIGKILL) once it stalls.</summary>
internal static class TornWriterProcess
{
    public static async Task RunAndKillMidUploadAsync(string kind, string path, int totalBytes, int stallAfter, params string[] storeArgs)
    {
        var assembly = typeof(TornWriterProgram).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { assembly, "torn-put", kind, path, $"{totalBytes}", $"{stallAfter}" }.Concat(storeArgs))
            start.ArgumentList.Add(arg);

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the torn writer process");
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(timeout.Token);
                if (line == TornWriterProgram.StalledLine) break;
                if (line is null)
                {
                    await process.WaitForExitAsync(timeout.Token);
                    throw new InvalidOperationException(
                        $"torn writer exited with {process.ExitCode} before stalling: {await stderr}");
                }
            }
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        Assert.NotEqual(0, process.ExitCode);
    }
}
