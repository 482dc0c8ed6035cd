using System.Diagnostics;

namespace RAE.Cluster.Tests;

/// <summary>The `rae` executable as an operator runs it: a bad runtime environment variable is a usage error, not a crash.</summary>
public sealed class CliEnvironmentTests
{
    [Fact]
    public async Task AnUnknownBf16GemmModeIsNamedWithoutAStackTrace()
    {
        var assembly = typeof(RAE.Client.Bench.SiloProcess).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(assembly);
        start.ArgumentList.Add("--help");
        start.Environment["RAE_BF16_GEMM"] = "fast";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(2, process.ExitCode);
        Assert.Contains("rae: bad environment: RAE_BF16_GEMM='fast' is not one of auto, native, emulated", error);
        Assert.DoesNotContain("   at ", error);
        Assert.DoesNotContain("Unhandled exception", error);
        Assert.Equal("", await output);
    }
}
