using System.Text.Json;
using System.Text.Json.Serialization;
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
/// A command that talks to the cluster. Reads its options first (so usage errors exit 2 before any connection), then
/// connects and runs. Exit codes: 0 ok, 1 the job failed or something named is unknown, 2 usage or config, 3 unreachable.
/// </summary>
public abstract class ClusterCommand : ICliCommand
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;
    public const int Unreachable = 3;
    public const int Interrupted = 130;

    public abstract string Name { get; }

    public abstract string Summary { get; }

    /// <summary>Reads the command's options and positional words; returns the work to do once connected.</summary>
    protected abstract Func<RaeClient, CommandContext, Task<int>> Prepare(CommandArguments arguments, CommandContext context);

    /// <summary>Whether the live terminal view is possible; tests and redirected output get plain lines.</summary>
    public static bool IsTerminal(TextWriter output) => ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;

    public async Task<int> RunAsync(CommandArguments arguments, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var json = arguments.Flag("json");
        var context = new CommandContext(output, error, json, !json && IsTerminal(output), cancellationToken);
        var connection = ClusterConnectionOptions.FromArguments(arguments);
        Func<RaeClient, CommandContext, Task<int>> work;
        try
        {
            work = Prepare(arguments, context);
        }
        catch (Exception problem) when (problem is ConfigException or FileNotFoundException)
        {
            error.WriteLine($"rae {Name}: {problem.Message}");
            return Usage;
        }
        arguments.RejectUnknownOptions();
        try
        {
            await using var client = await RaeClient.ConnectAsync(connection, cancellationToken);
            return await work(client, context);
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

    protected static string RequireOne(CommandArguments arguments, string what)
    {
        if (arguments.Positional.Count != 1) throw new UsageException($"expects exactly one {what}, got {arguments.Positional.Count}");
        return arguments.Positional[0];
    }

    protected static void RequireNone(CommandArguments arguments)
    {
        if (arguments.Positional.Count != 0) throw new UsageException($"takes no positional arguments, got '{string.Join(' ', arguments.Positional)}'");
    }

    /// <summary>Exit code of a job that ended: 0 when it completed, 1 otherwise.</summary>
    public static int ExitCodeOf(JobState state) => state == JobState.Completed ? Ok : Failed;
}
