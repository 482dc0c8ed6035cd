using System.CommandLine;
using System.Text.RegularExpressions;
using RAE.Client.Commands;

namespace RAE.Cluster.Tests.Client;

/// <summary>
/// The help is generated from the parser: every command's `--help` lists exactly the options, arguments and
/// subcommands that the parser accepts there, and every option the help lists parses.
/// </summary>
public sealed partial class CliHelpTests
{
    /// <summary>Every command of the tree, "" for `rae` itself, "jobs" for a group, "jobs list" for a command.</summary>
    public static TheoryData<string> CommandPaths() => new(AllPaths());

    private static IEnumerable<string> AllPaths() =>
        Walk(CommandLine.CreateRoot(CommandLine.CreateCommands())).Select(command => string.Join(' ', PathOf(command).Skip(1)));

    [Fact]
    public void TheTreeHoldsEveryCommandAndItsGroups()
    {
        var paths = AllPaths().ToHashSet();
        foreach (var command in CommandLine.CreateCommands()) Assert.Contains(command.Name, paths);
        foreach (var group in new[] { "", "bench", "cluster", "jobs", "checkpoints" }) Assert.Contains(group, paths);
    }

    [Theory]
    [MemberData(nameof(CommandPaths))]
    public async Task HelpListsExactlyWhatTheParserAccepts(string path)
    {
        var words = path.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var (exitCode, output, error) = await Cli.RunAsync([.. words, "--help"]);
        Assert.True(exitCode == 0, error);
        Assert.Equal("", error);
        Assert.Contains("Usage:", output);
        Assert.Contains(string.Join(' ', ["rae", .. words]), output);

        var command = Find(words);
        var accepted = AcceptedOptions(command).SelectMany(o => o.Aliases.Prepend(o.Name)).ToHashSet(StringComparer.Ordinal);
        var listed = OptionNamesIn(Section(output, "Options:")).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(accepted.Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));

        var arguments = Section(output, "Arguments:");
        foreach (var argument in command.Arguments) Assert.Contains($"<{argument.Name}>", arguments);
        var subcommands = Section(output, "Commands:");
        foreach (var subcommand in command.Subcommands) Assert.Matches(new Regex($@"^\s+{Regex.Escape(subcommand.Name)}\b", RegexOptions.Multiline), subcommands);
        if (command.Arguments.Count == 0) Assert.Equal("", arguments);
        if (command.Subcommands.Count == 0) Assert.Equal("", subcommands);
    }

    [Theory]
    [MemberData(nameof(CommandPaths))]
    public async Task EveryOptionTheHelpListsParses(string path)
    {
        var words = path.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var (_, output, _) = await Cli.RunAsync([.. words, "--help"]);
        var root = CommandLine.CreateRoot(CommandLine.CreateCommands());
        foreach (var name in OptionNamesIn(Section(output, "Options:")))
        {
            var parsed = root.Parse([.. words, name]);
            Assert.DoesNotContain(parsed.Errors, e => e.Message.Contains($"'{name}'", StringComparison.Ordinal) && e.Message.StartsWith("Unrecognized", StringComparison.Ordinal));
            Assert.Contains(parsed.Tokens, t => t.Value == name && t.Type == System.CommandLine.Parsing.TokenType.Option);
        }
    }

    [Theory]
    [MemberData(nameof(CommandPaths))]
    public async Task AnUnknownOptionExitsTwoNamingIt(string path)
    {
        var words = path.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var (exitCode, output, error) = await Cli.RunAsync([.. words, "--no-such-option"]);
        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        Assert.StartsWith("rae", error);
        Assert.Contains("'--no-such-option'", error);
    }

    [Fact]
    public async Task SampleAndTrainHelpShowTheOptionsTheOldUsageLeftOut()
    {
        var (_, sample, _) = await Cli.RunAsync("sample", "--help");
        foreach (var option in new[] { "--unit-size", "--workload", "--job-id", "--ckpt", "--weights", "--num-samples", "--seed", "--label-sampling", "--set", "--watch", "--no-watch", "--json", "--gateway", "--storage", "--azure" })
            Assert.Contains(option, sample);
        Assert.Contains("<ema|model>", sample);
        Assert.Matches(@"--num-samples <N>\s+How many samples to draw \[default: 50\]", sample);

        var (_, train, _) = await Cli.RunAsync("train", "--help");
        Assert.Contains("<CONFIG.yaml>", train);
        Assert.Matches(@"--ranks <N\|MIN\.\.MAX>\s+Ranks \(data-parallel workers, one device each\) to train on; with MIN\.\.MAX", train);

        // Both commands take the pair; the help marks each command's own default.
        Assert.Matches(@"--watch\s+Follow the job to its end \(exit 1 when it fails\) \[default\]", sample);
        Assert.Matches(@"--no-watch\s+Return once the job is submitted \[default\]", train);
        Assert.DoesNotMatch(@"--no-watch\s+Return once the job is submitted \[default\]", sample);
    }

    [Fact]
    public async Task RaeAloneShowsTheHelpAndExitsTwoAndHelpWordsEqualTheHelpOption()
    {
        var (bare, bareOutput, _) = await Cli.RunAsync();
        var (help, helpOutput, _) = await Cli.RunAsync("--help");
        Assert.Equal((2, 0), (bare, help));
        Assert.Equal(helpOutput, bareOutput);
        foreach (var group in new[] { "train", "sample", "jobs", "checkpoints", "cluster", "bench", "demo", "verify-reference" })
            Assert.Matches(new Regex($@"^\s+{Regex.Escape(group)}\b", RegexOptions.Multiline), helpOutput);

        var (word, wordOutput, _) = await Cli.RunAsync("help", "jobs", "list");
        var (_, optionOutput, _) = await Cli.RunAsync("jobs", "list", "--help");
        Assert.Equal(0, word);
        Assert.Equal(optionOutput, wordOutput);
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("jobs")]
    [InlineData("jobs", "frobnicate")]
    public async Task AnUnknownOrMissingCommandExitsTwo(params string[] args)
    {
        var (exitCode, _, error) = await Cli.RunAsync(args);
        Assert.Equal(2, exitCode);
        Assert.StartsWith("rae", error);
        Assert.Contains("--help' for usage", error);
    }

    /// <summary>The options accepted at <paramref name="command"/>: its own and the recursive ones of its ancestors (--help).</summary>
    private static IEnumerable<Option> AcceptedOptions(Command command)
    {
        foreach (var option in command.Options) yield return option;
        for (var parent = command.Parents.OfType<Command>().FirstOrDefault(); parent is not null; parent = parent.Parents.OfType<Command>().FirstOrDefault())
            foreach (var option in parent.Options.Where(o => o.Recursive)) yield return option;
    }

    /// <summary>The option names of a help "Options:" section: the first column, "-h, --help" or "--set &lt;KEY=VALUE&gt;".</summary>
    private static IEnumerable<string> OptionNamesIn(string section) =>
        OptionRow().Matches(section).SelectMany(m => m.Groups["names"].Value.Split(", ").Select(n => n.Trim()));

    /// <summary>The lines of a help section (up to the next blank line), "" when the help has none.</summary>
    private static string Section(string help, string title)
    {
        var lines = help.ReplaceLineEndings("\n").Split('\n');
        var index = Array.IndexOf(lines, title);
        return index < 0 ? "" : string.Join('\n', lines.Skip(index + 1).TakeWhile(line => line.Length > 0));
    }

    private static Command Find(string[] words)
    {
        Command command = CommandLine.CreateRoot(CommandLine.CreateCommands());
        foreach (var word in words) command = command.Subcommands.Single(c => c.Name == word);
        return command;
    }

    private static IEnumerable<Command> Walk(Command command) => command.Subcommands.SelectMany(Walk).Prepend(command);

    private static IEnumerable<string> PathOf(Command command)
    {
        var words = new List<string>();
        for (Symbol? symbol = command; symbol is not null; symbol = symbol.Parents.FirstOrDefault()) words.Add(symbol.Name);
        words.Reverse();
        return words;
    }

    [GeneratedRegex(@"^ {2}(?<names>-[^\s<,]+(?:, -[^\s<,]+)*)(?: <[^>]+>)?(?: \(REQUIRED\))?(?: {2,}|$)", RegexOptions.Multiline)]
    private static partial Regex OptionRow();
}
