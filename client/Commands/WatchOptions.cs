using System.CommandLine;

namespace RAE.Client.Commands;

/// <summary>
/// The `--watch` / `--no-watch` pair of the commands that start a job: follow the job to its end, or return once it is
/// submitted. Each command keeps its own default; giving both is a usage error (exit 2).
/// </summary>
public sealed class WatchOptions
{
    public WatchOptions(bool watchByDefault)
    {
        WatchByDefault = watchByDefault;
        Watch = new Option<bool>("--watch") { Description = "Follow the job to its end (exit 1 when it fails)" + (watchByDefault ? " [default]" : "") };
        NoWatch = new Option<bool>("--no-watch") { Description = "Return once the job is submitted" + (watchByDefault ? "" : " [default]") };
    }

    public bool WatchByDefault { get; }

    public Option<bool> Watch { get; }

    public Option<bool> NoWatch { get; }

    public IEnumerable<Symbol> All => [Watch, NoWatch];

    /// <summary>Whether to follow the job: --watch, else not with --no-watch, else the command's default.</summary>
    public bool Read(ParseResult parsed)
    {
        var watch = parsed.GetValue(Watch);
        var noWatch = parsed.GetValue(NoWatch);
        if (watch && noWatch) throw new UsageException("--watch and --no-watch cannot be given together; give one of them");
        return watch || (!noWatch && WatchByDefault);
    }
}
