namespace RAE.Models.Tests.Fuzzing;

/// <summary>
/// One reader under fuzzing: valid files to mutate, how to read one input (to the end: every tensor, every image),
/// and the errors the reader documents for bad input. Any other exception, a crash or a hang is a bug.
/// </summary>
/// <param name="Name">The name the test and the child process use.</param>
/// <param name="Seeds">Valid files; each must read without error.</param>
/// <param name="Read">Reads one input completely; throws for input the reader refuses.</param>
/// <param name="IsDocumentedError">Whether an exception is one the reader documents for bad input.</param>
/// <param name="DocumentedErrors">Those errors in words, for failure messages.</param>
/// <param name="Generate">Where set, builds every other input from scratch (structure-aware) instead of mutating a seed.</param>
public sealed record FuzzTarget(
    string Name,
    IReadOnlyList<byte[]> Seeds,
    Action<byte[]> Read,
    Func<Exception, bool> IsDocumentedError,
    string DocumentedErrors,
    Func<Random, FuzzInput>? Generate = null);

/// <summary>What one child process's fuzzing of one reader found.</summary>
public sealed record FuzzReport(
    string Target,
    int Cases,
    int Accepted,
    int Refused,
    IReadOnlyList<string> Escaped,
    double Seconds,
    double SlowestCaseMilliseconds,
    string SlowestCase,
    long PeakResidentMiB);
