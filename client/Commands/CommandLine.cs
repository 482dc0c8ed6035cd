namespace RAE.Client.Commands;

public static class CommandLine
{
    /// <summary>Every command of the `rae` CLI. Add new commands here.</summary>
    public static IReadOnlyList<ICliCommand> Commands { get; } =
    [
        new VerifyReferenceCommand(),
        new BenchModelCommand(),
        new BenchClusterCommand(),
        new BenchSiloCommand(),
        new ClusterStatusCommand(),
        new TrainCommand(),
        new SampleCommand(),
        new JobsListCommand(),
        new JobsShowCommand(),
        new JobsWatchCommand(),
        new JobsCancelCommand(),
        new CheckpointsListCommand(),
        new CheckpointsExportCommand(),
        new DemoCommand(),
        new InspectFileCommand(),
    ];

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            PrintHelp(output);
            return args.Length == 0 ? 2 : 0;
        }
        // The longest command name whose words prefix the arguments wins ("bench model" before "bench").
        var command = Commands
            .Select(c => (Command: c, Words: c.Name.Split(' ')))
            .Where(c => c.Words.Length <= args.Length && c.Words.SequenceEqual(args.Take(c.Words.Length)))
            .OrderByDescending(c => c.Words.Length)
            .FirstOrDefault();
        if (command.Command is null)
        {
            error.WriteLine($"rae: unknown command '{string.Join(' ', args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)))}'. Run 'rae help'.");
            return 2;
        }
        try
        {
            return await command.Command.RunAsync(new CommandArguments(args.Skip(command.Words.Length)), output, error, cancellationToken);
        }
        catch (UsageException usage)
        {
            error.WriteLine($"rae {command.Command.Name}: {usage.Message}");
            return 2;
        }
    }

    private static void PrintHelp(TextWriter output)
    {
        output.WriteLine("rae - Diffusion Transformers on Representation Autoencoders");
        output.WriteLine();
        foreach (var command in Commands.OrderBy(c => c.Name, StringComparer.Ordinal))
            output.WriteLine($"  {command.Name,-28} {command.Summary}");
    }
}
