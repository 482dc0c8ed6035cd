using System.Globalization;
using System.Text.Json;
using RAE.Models.Benchmarks;
using RAE.Models.Runtime;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>
/// Entry point of this test assembly when started as a child process (<c>dotnet RAE.Models.Tests.dll --mkl-probe N</c>):
/// the module initializer has already applied (or, with RAE_MKL_FAST_PATH=0, skipped) MKL's fast path; this prints the
/// fast path's outcome and the best single-threaded fp32 N×N matmul rate as one JSON line. The test host does not use it.
/// </summary>
public static class MklProbeProgram
{
    public static int Main(string[] args)
    {
        if (args is not ["--mkl-probe", var sizeText] || !int.TryParse(sizeText, CultureInfo.InvariantCulture, out var size) || size < 1)
        {
            Console.Error.WriteLine("this is a test assembly; as a program it only runs '--mkl-probe N' for the MKL fast-path test");
            return 2;
        }
        set_num_threads(1);
        var outcome = MklFastPath.Apply();
        var peak = Stage2ModelBenchmark.MeasureMatmulPeak(size, ScalarType.Float32, CPU);
        Console.WriteLine(JsonSerializer.Serialize(new MklProbeResult(outcome.Outcome.ToString(), peak.GflopsPerSecond)));
        return 0;
    }
}

public sealed record MklProbeResult(string Outcome, double GflopsPerSecond);
