using System.Diagnostics;

namespace RAE.Models.Tests.Fuzzing;

/// <summary>
/// Runs a seeded fuzz campaign against one reader inside the current (child) process: every seed first, then
/// mutated inputs. Before each case the input's description is written to a progress file, so that a parent whose
/// child crashed (a stack overflow, a native fault, an out-of-memory kill) can name the case that did it.
/// </summary>
public static class FuzzRunner
{
    private const int MaxEscapesListed = 12;

    public static FuzzReport Run(FuzzTarget target, int cases, int seed, string progressPath)
    {
        foreach (var (original, index) in target.Seeds.Select((bytes, index) => (bytes, index)))
        {
            WriteProgress(progressPath, $"seed file {index} unmodified");
            target.Read(original); // a seed that does not read means the fuzzing would test nothing
        }
        var mutator = new ByteMutator(target.Seeds, seed);
        var generatorRandom = new Random(seed + 1);
        var escaped = new List<string>();
        int accepted = 0, refused = 0, escapedCount = 0;
        var slowest = (Milliseconds: 0.0, Case: "");
        var total = Stopwatch.StartNew();
        for (var index = 0; index < cases; index++)
        {
            var input = target.Generate is { } generate && index % 2 == 1 ? generate(generatorRandom) : mutator.Next();
            var description = $"case {index} ({input.Bytes.Length} bytes: {input.How})";
            WriteProgress(progressPath, description);
            var watch = Stopwatch.StartNew();
            try
            {
                target.Read(input.Bytes);
                accepted++;
            }
            catch (Exception error) when (target.IsDocumentedError(error))
            {
                refused++;
            }
            catch (Exception error)
            {
                escapedCount++;
                if (escaped.Count < MaxEscapesListed) escaped.Add($"{description}: {Describe(error)}");
            }
            if (watch.Elapsed.TotalMilliseconds > slowest.Milliseconds) slowest = (watch.Elapsed.TotalMilliseconds, description);
        }
        if (escapedCount > escaped.Count) escaped.Add($"... and {escapedCount - escaped.Count} more");
        return new FuzzReport(target.Name, cases, accepted, refused, escaped, total.Elapsed.TotalSeconds,
            Math.Round(slowest.Milliseconds, 1), slowest.Case, PeakResidentMiB());
    }

    private static string Describe(Exception error)
    {
        var frames = (error.StackTrace ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries).Take(4).Select(frame => frame.Trim());
        return $"{error.GetType().FullName}: {error.Message} at {string.Join(" < ", frames)}";
    }

    private static void WriteProgress(string path, string description) => File.WriteAllText(path, description);

    /// <summary>The process's peak resident memory (VmHWM) in MiB, or -1 where /proc does not say.</summary>
    private static long PeakResidentMiB()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return -1;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? -1 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
    }
}
