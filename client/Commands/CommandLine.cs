using System.CommandLine;
using System.CommandLine.Help;

namespace RAE.Client.Commands;

/// <summary>
/// The `rae` command tree on System.CommandLine. Exit codes: what the command returns; 2 for every usage error (an
/// unknown command or option, a value that does not parse, a missing argument, or a <see cref="UsageException"/>);
/// `rae` alone prints the help and exits 2, `rae --help` / `rae help [COMMAND...]` exit 0.
/// </summary>
public static class CommandLine
{
    public const int UsageExitCode = 2;

    private static readonly Dictionary<string, string> GroupDescriptions = new(StringComparer.Ordinal)
    {
        ["bench"] = "Benchmarks of the model, the data pipeline and the cluster",
        ["cluster"] = "The cluster's silos, devices and workloads",
        ["jobs"] = "Training, sampling and encode jobs: list, show, watch, cancel",
        ["checkpoints"] = "Committed checkpoints of a training job: list, export",
        ["datasets"] = "Image datasets in the cluster's blob store: add, list, show, remove",
        ["samples"] = "Outputs of sampling jobs: export",
        ["latents"] = "Latent datasets written by encode jobs: list, show, remove",
    };

    /// <summary>Every command of the `rae` CLI, freshly built (a System.CommandLine symbol belongs to one tree). Add new commands here.</summary>
    public static IReadOnlyList<ICliCommand> CreateCommands() =>
    [
        new VerifyReferenceCommand(),
        new BenchModelCommand(),
        new BenchStage1Command(),
        new BenchClusterCommand(),
        new BenchSiloCommand(),
        new BenchDataCommand(),
        new ClusterStatusCommand(),
        new ClusterCertificatesCommand(),
        new TrainCommand(),
        new SampleCommand(),
        new EvalCommand(),
        new SamplesExportCommand(),
        new EncodeCommand(),
        new JobsListCommand(),
        new JobsShowCommand(),
        new JobsWatchCommand(),
        new JobsCancelCommand(),
        new CheckpointsListCommand(),
        new CheckpointsExportCommand(),
        new DatasetsAddCommand(),
        new DatasetsListCommand(),
        new DatasetsShowCommand(),
        new DatasetsRemoveCommand(),
        new LatentsListCommand(),
        new LatentsShowCommand(),
        new LatentsRemoveCommand(),
        new DemoCommand(),
        new InspectFileCommand(),
    ];

    /// <summary>The root `rae` command with every command under its group ("jobs list" under "jobs").</summary>
    public static Command CreateRoot(IReadOnlyList<ICliCommand> commands)
    {
        // Without the Windows-style "/?" and "/h" aliases, so that the help lists every name the parser accepts.
        var root = new Command("rae", "rae - Diffusion Transformers on Representation Autoencoders") { new HelpOption("--help", "-h", "-?") };
        foreach (var command in commands)
        {
            var words = command.Name.Split(' ');
            if (command.Command.Name != words[^1])
                throw new InvalidOperationException($"Command '{command.Name}' defines a parser command named '{command.Command.Name}'.");
            var parent = root;
            foreach (var word in words[..^1])
            {
                var group = parent.Subcommands.FirstOrDefault(c => c.Name == word);
                if (group is null)
                {
                    group = new Command(word, GroupDescriptions.GetValueOrDefault(word, word));
                    parent.Subcommands.Add(group);
                }
                parent = group;
            }
            parent.Subcommands.Add(command.Command);
            foreach (var argument in command.Command.Arguments) argument.Validators.Add(RejectOptionLikeValues);
        }
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var commands = CreateCommands();
        var root = CreateRoot(commands);
        if (args.Length == 0)
        {
            await root.Parse(["--help"]).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
            return UsageExitCode;
        }
        // `rae help jobs list` is `rae jobs list --help`.
        if (args[0] == "help") args = [.. args[1..], "--help"];
        // No @file response files: an argument is what it says.
        var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parsed.Action is HelpAction)
            return await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);

        var path = CommandPath(parsed.CommandResult.Command);
        if (parsed.Errors.Count > 0)
        {
            foreach (var problem in parsed.Errors) error.WriteLine($"{path}: {problem.Message}");
            error.WriteLine($"Run '{path} --help' for usage.");
            return UsageExitCode;
        }
        var command = commands.FirstOrDefault(c => ReferenceEquals(c.Command, parsed.CommandResult.Command))
            ?? throw new InvalidOperationException($"'{path}' parsed without errors but names no command.");
        try
        {
            return await command.RunAsync(parsed, output, error, cancellationToken);
        }
        catch (UsageException usage)
        {
            error.WriteLine($"{path}: {usage.Message}");
            return UsageExitCode;
        }
    }

    /// <summary>
    /// System.CommandLine gives a word it does not know as an option to a positional argument ("jobs show --colour" would
    /// show job "--colour"); a "--word" is an unknown option here, as it was before the switch to System.CommandLine.
    /// </summary>
    private static void RejectOptionLikeValues(System.CommandLine.Parsing.ArgumentResult result)
    {
        foreach (var token in result.Tokens.Where(t => t.Value.StartsWith("--", StringComparison.Ordinal)))
            result.AddError($"Unrecognized command or argument '{token.Value}'.");
    }

    /// <summary>"rae jobs list" for the list command.</summary>
    public static string CommandPath(Command command)
    {
        var words = new List<string>();
        for (Symbol? symbol = command; symbol is not null; symbol = symbol.Parents.FirstOrDefault()) words.Add(symbol.Name);
        words.Reverse();
        return string.Join(' ', words);
    }
}
