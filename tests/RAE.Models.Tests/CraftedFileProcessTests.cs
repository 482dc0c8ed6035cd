using System.Diagnostics;
using static RAE.Models.Tests.CheckpointTestFiles;

namespace RAE.Models.Tests;

/// <summary>
/// Crafted files read in a separate `rae inspect-file` process: a stack overflow cannot be caught, so only a child
/// process shows that the readers end with a clear error and exit code instead of taking the process down.
/// </summary>
public sealed class CraftedFileProcessTests
{
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public void AMillionNestedPickleTuplesEndTheChildWithAnErrorNamingTheLimit()
    {
        var path = WriteArchive(CraftedFiles.NestedTuplePickle(1_000_000));
        try
        {
            var (exitCode, _, error) = RunRae("inspect-file", path);
            Assert.True(exitCode == 1, $"exit {exitCode}: {error}");
            Assert.Contains("ReaderLimits.MaxPickleNestingDepth", error);
            Assert.Contains(path, error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void DeeplyNestedYamlEndsTheChildWithAnErrorNamingTheLimit()
    {
        var path = TemporaryPath(".yaml");
        File.WriteAllText(path, CraftedFiles.DeepFlowSequenceYaml(500_000));
        try
        {
            var (exitCode, _, error) = RunRae("inspect-file", path);
            Assert.True(exitCode == 1, $"exit {exitCode}: {error}");
            Assert.Contains("nest deeper than 64 levels", error);
            Assert.Contains(path, error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AWellFormedCheckpointIsListedWithExitCodeZero()
    {
        var (exitCode, output, error) = RunRae("inspect-file", PtFormats("stat.pt"));
        Assert.True(exitCode == 0, $"exit {exitCode}: {error}");
        Assert.Contains("entry mean", output);
    }

    private static (int ExitCode, string Output, string Error) RunRae(params string[] arguments)
    {
        var rae = Path.Combine(AppContext.BaseDirectory, "rae.dll");
        Assert.True(File.Exists(rae), $"{rae} is missing: the test project references the client, which should copy it");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(rae);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the rae child process");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(ChildTimeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"rae {string.Join(' ', arguments)} did not finish within {ChildTimeout}");
        }
        return (process.ExitCode, output.Result, error.Result);
    }
}
