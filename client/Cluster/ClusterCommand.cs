using System.Text.Json;
using System.Text.Json.Serialization;
using System.CommandLine;
using RAE.Client.Commands;
using RAE.GrainInterfaces;
using RAE.Configuration;

namespace RAE.Client.Cluster;

/// <summary>How a command should print: JSON for scripts, a live view on a terminal, plain lines when redirected.</summary>
public sealed record CommandContext(TextWriter Output, TextWriter Error, bool Json, bool Live, CancellationToken CancellationToken)
{
    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    public void WriteJson<T>(T value) => Output.WriteLine(JsonSerializer.Serialize(value, JsonOptions));
}

/// <summary>
/// A command that talks to the cluster. Reads its parsed values first (so usage errors exit 2 before any connection),
/// then connects and runs. Exit codes: 0 ok, 1 the job failed or something named is unknown, 2 usage or config, 3 unreachable.
/// </summary>
public abstract class ClusterCommand : ICliCommand
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;
    public const int Unreachable = 3;
    public const int Interrupted = 130;

    private Command? _command;

    public abstract string Name { get; }

    /// <summary>One line for the command list of `rae --help`.</summary>
    public abstract string Summary { get; }

    /// <summary>The command's own arguments and options; --json and the connection options are added after them.</summary>
    protected abstract IEnumerable<Symbol> OwnSymbols { get; }

    protected Option<bool> Json { get; } = CliOptions.Json();

    protected ClusterConnectionCliOptions Connection { get; } = new();

    public Command Command => _command ??= Define();

    /// <summary>Reads the command's parsed values; returns the work to do once connected.</summary>
    protected abstract Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context);

    /// <summary>Whether the live terminal view is possible; tests and redirected output get plain lines.</summary>
    public static bool IsTerminal(TextWriter output) => ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;

    public async Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var json = parsed.GetValue(Json);
        var context = new CommandContext(output, error, json, !json && IsTerminal(output), cancellationToken);
        var connection = Connection.Read(parsed);
        Func<RaeClient, CommandContext, Task<int>> work;
        try
        {
            work = Prepare(parsed, context);
        }
        catch (Exception problem) when (problem is ConfigException or FileNotFoundException)
        {
            error.WriteLine($"rae {Name}: {problem.Message}");
            return Usage;
        }
        try
        {
            await using var client = await RaeClient.ConnectAsync(connection, cancellationToken);
            return await work(client, context);
        }
        catch (ClusterTlsException problem)
        {
            error.WriteLine($"rae {Name}: {problem.Message}");
            return Usage;
        }
        catch (Exception problem) when (RaeClient.IsUnreachable(problem))
        {
            error.WriteLine($"rae {Name}: {problem.Message}");
            return Unreachable;
        }
        catch (RaeJobException problem)
        {
            error.WriteLine($"rae {Name}: {problem.Message}");
            return Failed;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (context.Live) output.WriteLine();
            error.WriteLine($"rae {Name}: interrupted; jobs already submitted keep running in the cluster");
            return Interrupted;
        }
    }

    private Command Define()
    {
        var command = new Command(Name.Split(' ')[^1], Summary);
        foreach (var symbol in OwnSymbols.Append(Json).Concat(Connection.All))
        {
            switch (symbol)
            {
                case Argument argument: command.Arguments.Add(argument); break;
                case Option option: command.Options.Add(option); break;
                default: throw new InvalidOperationException($"'{Name}' declares a {symbol.GetType().Name}, which is neither an argument nor an option.");
            }
        }
        return command;
    }

    /// <summary>The job id argument of the `jobs` and `checkpoints` commands.</summary>
    protected static Argument<string> JobIdArgument(string description = "The job's id") => new("JOB") { Description = description };

    /// <summary>Exit code of a job that ended: 0 when it completed, 1 otherwise.</summary>
    public static int ExitCodeOf(JobState state) => state == JobState.Completed ? Ok : Failed;
}
