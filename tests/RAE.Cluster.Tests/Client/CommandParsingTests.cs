using System.CommandLine;
using System.Net;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.GrainInterfaces;
using RAE.Configuration;

namespace RAE.Cluster.Tests.Client;

public sealed class CommandParsingTests
{
    private static string TinyConfig => Cli.RepositoryFile("configs/tiny/stage2-ddt-tiny.yaml");

    [Fact]
    public void EveryClusterCommandIsRegistered()
    {
        var names = CommandLine.CreateCommands().Select(c => c.Name).ToHashSet();
        foreach (var expected in new[] { "cluster status", "train", "sample", "jobs list", "jobs show", "jobs watch", "jobs cancel", "checkpoints list", "checkpoints export", "demo" })
            Assert.Contains(expected, names);
    }

    [Fact]
    public void ConnectionOptionsReadGatewaysStorageIdsAndTimeout()
    {
        var options = Connection(["--gateway", "31000,10.0.0.5:31001", "--cluster-id", "c1", "--service-id", "s1", "--connect-timeout", "2.5", "--membership-table", "raemembers"], _ => null);
        Assert.Equal("raemembers", options.MembershipTable);
        Assert.Equal([new IPEndPoint(IPAddress.Loopback, 31000), new IPEndPoint(IPAddress.Parse("10.0.0.5"), 31001)], options.Gateways);
        Assert.Equal(("c1", "s1"), (options.ClusterId, options.ServiceId));
        Assert.Equal(TimeSpan.FromSeconds(2.5), options.ConnectTimeout);
        Assert.False(options.IsAzureMode);
        Assert.Contains("127.0.0.1:31000", options.Describe());
    }

    [Fact]
    public void ConnectionOptionsFallBackToEnvironmentAndRedactTheAccountKey()
    {
        var environment = new Dictionary<string, string?>
        {
            ["RAE_STORAGE_CONNECTION"] = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=secret==;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1",
            ["RAE_CLUSTER_ID"] = "from-env",
        };
        var options = Connection([], name => environment.GetValueOrDefault(name));
        Assert.True(options.IsAzureMode);
        Assert.Equal("from-env", options.ClusterId);
        Assert.Contains("AccountName=devstoreaccount1", options.Describe());
        Assert.DoesNotContain("secret", options.Describe());
    }

    [Theory]
    [InlineData("not-a-port")]
    [InlineData("70000")]
    [InlineData("127.0.0.1:0")]
    public void BadGatewayIsAUsageError(string gateway)
    {
        var error = Assert.Throws<UsageException>(() => Connection(["--gateway", gateway], _ => null));
        Assert.Contains("--gateway", error.Message);
    }

    [Fact]
    public void AzureIsAnAliasOfStorage()
    {
        var options = Connection(["--azure", "AccountName=a;AccountKey=k"], _ => null);
        Assert.True(options.IsAzureMode);
        Assert.Equal("AccountName=a;AccountKey=k", options.StorageConnectionString);
    }

    /// <summary>Parses <paramref name="args"/> with the connection options every cluster command declares.</summary>
    private static ClusterConnectionOptions Connection(string[] args, Func<string, string?> environment)
    {
        var cli = new ClusterConnectionCliOptions();
        var command = new Command("probe");
        foreach (var option in cli.All) command.Options.Add(option);
        var parsed = command.Parse(args);
        Assert.Empty(parsed.Errors);
        return cli.Read(parsed, environment);
    }

    [Fact]
    public void SamplingSourceNamesAJobAStepOrAFile()
    {
        Assert.Equal(new SamplingSource("train-1", null, null), SamplingSource.Parse("train-1"));
        Assert.Equal(new SamplingSource("train-1", 40, null), SamplingSource.Parse("train-1@40"));
        Assert.Equal(Path.GetFullPath("w.safetensors"), SamplingSource.Parse("w.safetensors").CheckpointPath);
        Assert.Throws<UsageException>(() => SamplingSource.Parse("train-1@forty"));
    }

    [Fact]
    public void TrainingSpecFollowsTheConfigAndItsOverrides()
    {
        var config = JobSpecFactory.LoadConfig(TinyConfig, ["training.max_steps=50", "training.optimizer.lr=0.002"]);
        var spec = JobSpecFactory.Training(config, "dit-dh", ranks: 2);
        Assert.Equal("dit-dh", spec.Workload);
        Assert.Equal(2, spec.Ranks);
        Assert.Equal(16, spec.GlobalBatchSize);
        Assert.Equal(50, spec.Steps);
        Assert.Equal(0.002, spec.LearningRate);
        Assert.Equal(1.0, spec.GradientClip);
        Assert.Equal(0, spec.WarmupSteps); // the worker runs the config's schedule
        Assert.Equal(4 * (640 / 16), spec.CheckpointInterval);
        // The worker gets the effective config: parsing it back gives the overridden values.
        var shipped = spec.Config!.Parse();
        Assert.Equal(50, shipped.Training!.MaxSteps);
        Assert.Equal(0.002, shipped.Training.Optimizer.Lr);
    }

    [Fact]
    public void CheckpointRetentionComesFromTheTrainingSection()
    {
        var untouched = JobSpecFactory.Training(JobSpecFactory.LoadConfig(TinyConfig, []), "dit-dh", ranks: 1);
        Assert.Equal(CheckpointRetentionPolicy.Default, untouched.Retention);

        var config = JobSpecFactory.LoadConfig(TinyConfig, ["training.keep_last=2", "training.keep_every=100", "training.keep_best=1"]);
        var spec = JobSpecFactory.Training(config, "dit-dh", ranks: 1);
        Assert.Equal(new CheckpointRetentionPolicy { KeepLast = 2, KeepEvery = 100, KeepBest = 1 }, spec.Retention);
        Assert.Equal(100, spec.Config!.Parse().Training!.KeepEvery);

        var bad = Assert.Throws<ConfigException>(() => JobSpecFactory.LoadConfig(TinyConfig, ["training.keep_best=-1"]));
        Assert.Contains("keep_best", bad.Message);
        Assert.Contains("must be >= 0", bad.Message);
    }

    [Fact]
    public void SamplingSpecTakesClassesFromTheConfigAndTheSourceJob()
    {
        var config = JobSpecFactory.LoadConfig(TinyConfig, []);
        var spec = JobSpecFactory.Sampling(config, "rae", SamplingSource.Parse("train-7@80"), samples: 30, seed: 3, labels: "random", unitSize: 4);
        Assert.Equal(("train-7", 80L), (spec.SourceTrainingJobId, spec.SourceCheckpointStep));
        Assert.Equal((30, 10, "random", 3L, 4), (spec.Samples, spec.Classes, spec.Labels, spec.Seed, spec.UnitSize));
        // The training job is the source: no weights file is exported or named.
        Assert.Null(spec.CheckpointPath);
        Assert.NotNull(spec.Config);
        var fromFile = JobSpecFactory.Sampling(config, "rae", SamplingSource.Parse("w.safetensors"), samples: 30, seed: 3, labels: "random", unitSize: 4);
        Assert.Null(fromFile.SourceTrainingJobId);
        Assert.Equal(Path.GetFullPath("w.safetensors"), fromFile.CheckpointPath);
        Assert.Equal(10, spec.Config!.Parse().Misc.NumClasses);
    }

    [Fact]
    public void SamplingSpecWithoutAConfigLeavesConfigurationAndClassesToTheCheckpoint()
    {
        var spec = JobSpecFactory.SamplingWithCheckpointConfig("rae", SamplingSource.Parse("train-7"), samples: 8, seed: 1, labels: "equal", unitSize: 4);
        Assert.Equal(("train-7", (long?)null), (spec.SourceTrainingJobId, spec.SourceCheckpointStep));
        Assert.Equal(0, spec.Classes);
        Assert.Null(spec.Config);
        Assert.Null(spec.CheckpointPath);
        Assert.Throws<UsageException>(() => JobSpecFactory.SamplingWithCheckpointConfig("rae", SamplingSource.Parse("w.safetensors"), 8, 1, "equal", 4));
    }

    [Theory]
    [InlineData("train")]
    [InlineData("train", "a.yaml", "b.yaml")]
    [InlineData("train", "{tiny}", "--ranks", "0")]
    [InlineData("train", "{tiny}", "--ranks", "two")]
    [InlineData("train", "{tiny}", "--job-id", "a/b")]
    [InlineData("train", "{tiny}", "--precision", "fp16")]
    [InlineData("train", "{tiny}", "--data", "Bad/Name")]
    [InlineData("sample")]
    [InlineData("sample", "{tiny}", "--label-sampling", "weird")]
    [InlineData("sample", "{tiny}", "--num-samples", "0")]
    [InlineData("sample", "{tiny}", "--precision", "fp16")]
    [InlineData("sample", "{tiny}", "--ckpt", "job@x")]
    [InlineData("sample", "{tiny}", "--ckpt", "job@3", "--weights", "optimizer")]
    [InlineData("sample", "--ckpt", "w.safetensors")]
    [InlineData("sample", "--ckpt", "train-1", "--set", "training.max_steps=3")]
    [InlineData("sample", "{tiny}", "{tiny}", "--ckpt", "train-1")]
    [InlineData("jobs", "show")]
    [InlineData("jobs", "watch")]
    [InlineData("jobs", "cancel", "a", "b")]
    [InlineData("jobs", "list", "--bogus")]
    [InlineData("jobs", "list", "extra")]
    [InlineData("jobs", "list", "--limit", "0")]
    [InlineData("jobs", "list", "--limit", "1001")]
    [InlineData("cluster", "status", "extra")]
    [InlineData("checkpoints", "list")]
    [InlineData("checkpoints", "export", "job")]
    [InlineData("checkpoints", "export", "job", "--out", "weights.bin")]
    [InlineData("checkpoints", "export", "job", "--out", "w.safetensors", "--step", "last")]
    [InlineData("checkpoints", "export", "job", "--out", "w.safetensors", "--weights", "optimizer")]
    [InlineData("demo", "--num-samples", "0")]
    [InlineData("jobs", "list", "--gateway", "nope")]
    [InlineData("jobs", "list", "--connect-timeout", "0")]
    public async Task UsageErrorsExitTwoBeforeAnyConnection(params string[] args)
    {
        var resolved = args.Select(a => a == "{tiny}" ? TinyConfig : a).ToArray();
        // No silo listens on the default gateway in tests; a usage error must be found before connecting (else exit 3).
        var (exitCode, _, error) = await Cli.RunAsync(resolved);
        Assert.Equal(2, exitCode);
        Assert.StartsWith("rae ", error);
    }

    [Fact]
    public async Task TrainWithAnUnknownOverrideKeyExitsTwoNamingKeyAndFile()
    {
        var (exitCode, _, error) = await Cli.RunAsync("train", TinyConfig, "--set", "training.learning_rate=0.1", "--gateway", Cli.ClosedPort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(2, exitCode);
        Assert.Contains("training.learning_rate", error);
        Assert.Contains("stage2-ddt-tiny.yaml", error);
    }

    [Fact]
    public async Task TrainWithAnUnknownKeyInTheFileExitsTwoNamingKeyFileAndLine()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rae-bad-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(path, (await File.ReadAllTextAsync(TinyConfig)).Replace("  ema_decay: 0.99", "  ema_decay: 0.99\n  emma_decay: 0.5", StringComparison.Ordinal));
        try
        {
            var (exitCode, _, error) = await Cli.RunAsync("train", path);
            Assert.Equal(2, exitCode);
            Assert.Contains("training.emma_decay", error);
            Assert.Contains(Path.GetFileName(path), error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task MissingConfigFileExitsTwoNamingIt()
    {
        var (exitCode, _, error) = await Cli.RunAsync("sample", "no/such/config.yaml");
        Assert.Equal(2, exitCode);
        Assert.Contains("no/such/config.yaml", error);
    }

    [Theory]
    [InlineData("cluster", "status")]
    [InlineData("jobs", "list", "--json")]
    [InlineData("jobs", "show", "train-x")]
    [InlineData("jobs", "cancel", "train-x")]
    [InlineData("checkpoints", "list", "train-x")]
    [InlineData("train", "{tiny}", "--watch")]
    public async Task UnreachableClusterExitsThreeNamingTheGateway(params string[] args)
    {
        var port = Cli.ClosedPort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var resolved = args.Select(a => a == "{tiny}" ? TinyConfig : a).Concat(["--gateway", port]).ToArray();
        var (exitCode, output, error) = await Cli.RunAsync(resolved);
        Assert.Equal(3, exitCode);
        Assert.Contains($"127.0.0.1:{port}", error);
        Assert.Equal("", output);
    }

    [Theory]
    [InlineData(0, 10, "[..............................]   0%")]
    [InlineData(5, 10, "[###############...............]  50%")]
    [InlineData(12, 10, "[##############################] 100%")]
    [InlineData(3, 0, "[..............................]   0%")]
    public void ProgressBarShowsTheDoneFraction(long done, long total, string expected) =>
        Assert.Equal(expected, JobWatcher.Bar(done, total));

    [Theory]
    [InlineData(JobState.Completed, 0)]
    [InlineData(JobState.Failed, 1)]
    [InlineData(JobState.Cancelled, 1)]
    public void EndedJobsMapToExitCodes(JobState state, int expected) => Assert.Equal(expected, ClusterCommand.ExitCodeOf(state));
}
