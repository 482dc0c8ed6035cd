using System.CommandLine;

namespace RAE.Client.Commands;

/// <summary>One `rae` command. Exit codes: 0 success, 1 the work failed (for example a check did not pass), 2 bad usage.</summary>
public interface ICliCommand
{
    /// <summary>The words that select the command, for example "verify-reference" or "bench model".</summary>
    string Name { get; }

    /// <summary>
    /// The parser's definition (named by the last word of <see cref="Name"/>): its description, typed options and
    /// arguments. `--help` is generated from it, so the usage text is the parser.
    /// </summary>
    Command Command { get; }

    /// <summary>Runs with the values parsed from <see cref="Command"/>; throws <see cref="UsageException"/> for values that parse but make no sense.</summary>
    Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken);
}
