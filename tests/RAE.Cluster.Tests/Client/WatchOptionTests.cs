using RAE.Client.Commands;

namespace RAE.Cluster.Tests.Client;

/// <summary>`rae train` and `rae sample` take the same --watch / --no-watch pair, each keeping its own default.</summary>
public sealed class WatchOptionTests
{
    private static string TinyConfig => Cli.RepositoryFile("configs/tiny/stage2-ddt-tiny.yaml");

    [Theory]
    [InlineData("train", new string[0], false)]
    [InlineData("train", new[] { "--watch" }, true)]
    [InlineData("train", new[] { "--no-watch" }, false)]
    [InlineData("sample", new string[0], true)]
    [InlineData("sample", new[] { "--watch" }, true)]
    [InlineData("sample", new[] { "--no-watch" }, false)]
    public void WatchingFollowsTheFlagElseTheCommandsDefault(string name, string[] flags, bool expected)
    {
        var train = new TrainCommand();
        var sample = new SampleCommand();
        var (watching, command) = name == "train" ? (train.Watching, train.Command) : (sample.Watching, sample.Command);
        var parsed = command.Parse([TinyConfig, .. flags]);
        Assert.Empty(parsed.Errors);
        Assert.Equal(expected, watching.Read(parsed));
    }

    [Theory]
    [InlineData("train", "--watch", "--no-watch")]
    [InlineData("sample", "--no-watch", "--watch")]
    public async Task WatchAndNoWatchTogetherExitTwoBeforeConnecting(string name, string first, string second)
    {
        var closedPort = Cli.ClosedPort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var (exitCode, output, error) = await Cli.RunAsync(name, TinyConfig, first, second, "--gateway", closedPort);
        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        Assert.Contains("--watch and --no-watch cannot be given together", error);
        Assert.DoesNotContain(closedPort, error);
    }
}
