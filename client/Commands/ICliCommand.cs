namespace RAE.Client.Commands;

/// <summary>One `rae` command. Exit codes: 0 success, 1 the work failed (for example a check did not pass), 2 bad usage.</summary>
public interface ICliCommand
{
    /// <summary>The words that select the command, for example "verify-reference" or "bench model".</summary>
    string Name { get; }

    /// <summary>One line for `rae help`.</summary>
    string Summary { get; }

    Task<int> RunAsync(CommandArguments arguments, TextWriter output, TextWriter error, CancellationToken cancellationToken);
}
