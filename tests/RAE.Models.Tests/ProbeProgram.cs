using RAE.Configuration;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using RAE.Models.Benchmarks;
using RAE.Models.Nn;
using RAE.Models.Runtime;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>
/// Entry point of this test assembly when a test starts it as a child process (<c>dotnet RAE.Models.Tests.dll MODE ...</c>),
/// single-threaded so that a loaded machine's thread contention does not distort it; prints one JSON line. The test host
/// does not use it. Modes: <c>--mkl-dispatch</c> (the module initializer has applied, or with RAE_MKL_FAST_PATH=0
/// skipped, MKL's fast path: its outcome and the code path MKL's dispatcher reports after a first matmul) and <c>--loss-curve fp32|bf16</c>
/// (<see cref="MixedPrecisionTests.TrainTiny"/>'s losses), <c>--scalar-race</c> (<see cref="DeferredScalarReleaseTests.Race"/>)
/// <c>--return-free-memory</c> (<see cref="NativeMemoryTuningTests.AllocateFreeAndReturn"/>) and <c>--fuzz-reader</c> (<see cref="ReaderFuzzTests.FuzzInThisProcess"/>).
/// </summary>
public static class ProbeProgram
{
    public static int Main(string[] args)
    {
        set_num_threads(1);
        switch (args)
        {
            case ["--mkl-dispatch"]:
                var applied = MklFastPath.Apply();
                using (var warm = ones(64, 64)) using (var product = warm.matmul(warm)) { }
                Console.WriteLine(JsonSerializer.Serialize(new MklDispatchResult(applied.Outcome.ToString(), MklFastPath.DetectedCodePath())));
                return 0;
            case ["--scalar-race", var mode]:
                Console.WriteLine(JsonSerializer.Serialize(DeferredScalarReleaseTests.Race(mode == "until-first-error")));
                return 0;
            case ["--fuzz-reader", var reader, var cases, var seed, var progressPath]:
                Console.WriteLine(JsonSerializer.Serialize(ReaderFuzzTests.FuzzInThisProcess(reader, int.Parse(cases, CultureInfo.InvariantCulture), int.Parse(seed, CultureInfo.InvariantCulture), progressPath)));
                return 0;
            case ["--return-free-memory"]:
                Console.WriteLine(JsonSerializer.Serialize(NativeMemoryTuningTests.AllocateFreeAndReturn()));
                return 0;
            case ["--loss-curve", var precision]:
                Console.WriteLine(JsonSerializer.Serialize(MixedPrecisionTests.TrainTiny(ComputePrecisions.Parse(precision))));
                return 0;
            default:
                Console.Error.WriteLine("this is a test assembly; as a program it only runs '--mkl-dispatch', '--scalar-race until-first-error|fixed' or '--loss-curve fp32|bf16', '--return-free-memory' or '--fuzz-reader NAME CASES SEED PROGRESS_FILE' for its tests");
                return 2;
        }
    }

    /// <summary>Runs this assembly as a child process with the given arguments and environment; returns its last stdout line.</summary>
    public static string Run(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var (exitCode, output, error) = RunProcess(environment, TimeSpan.FromMinutes(10), arguments);
        Assert.True(exitCode is not null, $"the probe '{string.Join(' ', arguments)}' did not finish in ten minutes");
        Assert.True(exitCode == 0, $"the probe '{string.Join(' ', arguments)}' failed ({exitCode}): {error}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last();
    }

    /// <summary>Runs this assembly as a child process; its exit code (null when it ran past <paramref name="timeout"/> and was killed), stdout and stderr.</summary>
    public static (int? ExitCode, string Output, string Error) RunProcess(IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(ProbeProgram).Assembly.Location);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            return (null, output.Result, error.Result);
        }
        return (process.ExitCode, output.Result, error.Result);
    }
}

public sealed record MklDispatchResult(string Outcome, int? CodePath);

public sealed record LossCurve(IReadOnlyList<double> Losses, IReadOnlyList<string> ParameterAndGradientTypes);
