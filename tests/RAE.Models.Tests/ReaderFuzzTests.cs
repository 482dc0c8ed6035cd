using System.Globalization;
using System.Text.Json;
using RAE.Models.Tests.Fuzzing;
using Xunit.Abstractions;
using static RAE.Models.Tests.CheckpointTestFiles;

namespace RAE.Models.Tests;

/// <summary>
/// A fuzz campaign per file reader (torch.save archives, pickles, safetensors, .npz, .npy, ONNX, YAML, images, image
/// shards, IDX files): seeded random and mutated inputs, each reader in its own child process so that a stack
/// overflow, a native fault or runaway memory fails the test instead of killing the test host. Every input must
/// either read or fail with the reader's documented error; the child's managed heap is capped, so a reader that
/// allocates from a declared size escapes with an OutOfMemoryException, and its peak resident memory is checked.
/// </summary>
public sealed class ReaderFuzzTests(ITestOutputHelper output)
{
    private const int CasesPerReader = 2000;
    private const int Seed = 20261207;
    private const long ManagedHeapLimitBytes = 1L << 30;
    private const long MaxPeakResidentMiB = 1536;
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(3);

    public static TheoryData<string> Readers =>
        ["torch-save", "pickle", "safetensors", "npz", "npy", "onnx", "yaml", "images", "image-shards", "idx"];

    [Theory]
    [MemberData(nameof(Readers))]
    public void RandomAndMutatedInputsEitherReadOrFailWithTheReadersDocumentedError(string reader)
    {
        var progressPath = TemporaryPath(".fuzz-progress");
        try
        {
            var environment = new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = ManagedHeapLimitBytes.ToString("x", CultureInfo.InvariantCulture) };
            var (exitCode, stdout, stderr) = ProbeProgram.RunProcess(environment, ChildTimeout,
                "--fuzz-reader", reader, CasesPerReader.ToString(CultureInfo.InvariantCulture), Seed.ToString(CultureInfo.InvariantCulture), progressPath);
            var lastCase = File.Exists(progressPath) ? File.ReadAllText(progressPath) : "(none started)";
            Assert.True(exitCode is not null, $"the {reader} fuzz child ran past {ChildTimeout}; it was at {lastCase}");
            Assert.True(exitCode == 0, $"the {reader} fuzz child died (exit {exitCode}) at {lastCase}: {Tail(stderr)}");
            var report = JsonSerializer.Deserialize<FuzzReport>(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last())!;
            output.WriteLine($"{report.Target}: {report.Cases} cases in {report.Seconds:0.0} s, {report.Accepted} read, {report.Refused} refused; " +
                $"slowest {report.SlowestCaseMilliseconds} ms ({report.SlowestCase}); peak resident {report.PeakResidentMiB} MiB");
            Assert.True(report.Escaped.Count == 0,
                $"{report.Escaped.Count} {reader} inputs escaped the documented errors:\n{string.Join("\n", report.Escaped)}");
            Assert.True(report.Refused >= report.Cases / 10, $"only {report.Refused} of {report.Cases} {reader} inputs were refused: the mutations do not reach the reader");
            Assert.True(report.PeakResidentMiB <= MaxPeakResidentMiB, $"the {reader} fuzz child peaked at {report.PeakResidentMiB} MiB resident (limit {MaxPeakResidentMiB})");
        }
        finally
        {
            File.Delete(progressPath);
        }
    }

    /// <summary>Runs one reader's campaign in this process (the child's side of the test).</summary>
    public static FuzzReport FuzzInThisProcess(string reader, int cases, int seed, string progressPath)
    {
        var workFolder = Directory.CreateTempSubdirectory("rae-fuzz-").FullName;
        try
        {
            var target = CheckpointFuzzTargets.All(workFolder).Concat(ImageFuzzTargets.All(workFolder)).FirstOrDefault(t => t.Name == reader)
                ?? throw new ArgumentException($"no fuzz target '{reader}'", nameof(reader));
            return FuzzRunner.Run(target, cases, seed, progressPath);
        }
        finally
        {
            Directory.Delete(workFolder, recursive: true);
        }
    }

    private static string Tail(string text) => text.Length <= 4000 ? text : "…" + text[^4000..];
}
