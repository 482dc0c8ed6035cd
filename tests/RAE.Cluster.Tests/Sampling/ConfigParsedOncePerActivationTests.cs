using System.Globalization;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage2;

namespace RAE.Cluster.Tests.Sampling;

/// <summary>A job's configuration is parsed once per activation: not again by status polls, work units or group re-forms.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ConfigParsedOncePerActivationTests(ClusterFixture fixture)
{
    /// <summary>A configuration no other test uses, so the per-hash parse count is this test's alone.</summary>
    private static RaeConfig UniqueSamplingConfig()
    {
        var tMax = (0.7 + Random.Shared.Next(1, 100_000) * 1e-7).ToString("R", CultureInfo.InvariantCulture);
        return RaeConfig.Parse(SamplingTestFiles.Instance.ConfigYaml(decode: false), "parse-once test", [$"guidance.t_max={tMax}"]);
    }

    [Fact]
    public async Task StatusPollsAndWorkUnitsDoNotParseTheConfigurationAgain()
    {
        var config = UniqueSamplingConfig();
        var spec = SamplingJobSpecs.FromConfig(config) with
        {
            Samples = 6,
            UnitSize = 2,
            Classes = 10,
            MaxWorkers = 1,
            UnitDelay = TimeSpan.FromMilliseconds(200),
        };
        var sha256 = spec.Config!.Sha256;
        Assert.Equal(0, ConfigurationTelemetry.ParseCount(sha256));
        // The guidance scale arrives typed at the worker from the one parsed configuration.
        Assert.Equal(config.Guidance.Scale, spec.Config.Parse().Guidance.Scale);
        var beforeJob = ConfigurationTelemetry.ParseCount(sha256);

        var jobId = "sample-parse-once-" + Guid.NewGuid().ToString("N")[..8];
        var job = fixture.Grains.GetGrain<ISamplingJobGrain>(jobId);
        await job.Start(spec);
        SamplingJobStatus status;
        var polls = 0;
        do
        {
            status = await job.GetStatus();
            polls++;
            await Task.Delay(10);
        }
        while (status.State is JobState.Pending or JobState.Running);
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        for (var i = 0; i < 10; i++) await job.GetStatus();

        Assert.Equal(3, status.UnitsDone);
        Assert.True(polls > 3, $"only {polls} status polls ran while the job was going");
        // One parse by the job grain at Start, one by the single sampling worker for all three units; none per poll.
        Assert.Equal(2, ConfigurationTelemetry.ParseCount(sha256) - beforeJob);
    }

    [Fact]
    public void ARankWorkerParsesItsConfigurationOnceAcrossGroupReforms()
    {
        var tMax = (0.7 + Random.Shared.Next(1, 100_000) * 1e-7).ToString("R", CultureInfo.InvariantCulture);
        var spec = Stage2.DiTTestJobs.Spec(ranks: 1, overrides: [$"guidance.t_max={tMax}"]);
        var sha256 = spec.Config!.Sha256;
        using var worker = new DiTRankWorker();
        worker.Initialize(new RankWorkerContext(spec, 0, 1, "cpu", 1));
        worker.Initialize(new RankWorkerContext(spec with { Ranks = 2 }, 1, 2, "cpu", 1));
        Assert.Equal(1, ConfigurationTelemetry.ParseCount(sha256));
        Assert.True(worker.ParameterCount > 0);
    }
}
