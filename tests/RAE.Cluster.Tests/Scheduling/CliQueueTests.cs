using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using RAE.Cluster.Tests.Client;
using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Scheduling;

/// <summary>The queue as the CLI shows it, on one embedded silo with one device.</summary>
public sealed class CliQueueTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>
{
    private Task<(int ExitCode, string Output, string Error)> Rae(params string[] args) =>
        Cli.RunAsync([.. args, "--gateway", silo.Gateway, "--cluster-id", "cli-test"]);

    private static string Config => Cli.RepositoryFile("configs/tiny/stage2-ddt-tiny.yaml");

    /// <summary>Polled through the silo's own grain factory: a CLI client per poll would cost a connection each time.</summary>
    private ITrainingCoordinatorGrain Coordinator(string jobId) =>
        silo.Services.GetRequiredService<IGrainFactory>().GetGrain<ITrainingCoordinatorGrain>(jobId);

    [Fact]
    public async Task OnOneDeviceTheSecondJobWaitsVisiblyInTheQueueAndRunsWhenTheFirstIsCancelled()
    {
        // The first job holds the one device until it is cancelled (slow steps, so it leaves the CPU to the rest).
        var first = Coordinator("train-queue-first");
        await first.Start(SchedulingTests.Spec(ranks: 1, steps: 1_000_000, TimeSpan.FromMilliseconds(50)));
        await SchedulingTests.WaitUntilAsync(async () => (await first.GetStatus()).State == JobState.Running, "the first job runs");
        var (secondExit, secondOutput, secondError) = await Rae("train", Config, "--workload", "tiny-mlp", "--set", "training.max_steps=4", "--set", "training.ckpt_every=2", "--job-id", "train-queue-second");
        Assert.True(secondExit == 0, secondError);
        Assert.Contains("submitted train-queue-second", secondOutput);
        var second = Coordinator("train-queue-second");
        await SchedulingTests.WaitUntilAsync(async () => (await second.GetStatus()).QueuePosition == 1, "the second job waits in the queue");

        var (statusExit, statusJson, statusError) = await Rae("cluster", "status", "--json");
        Assert.True(statusExit == 0, statusError);
        using (var report = JsonDocument.Parse(statusJson))
        {
            var queue = report.RootElement.GetProperty("queue");
            Assert.Equal(1, queue.GetArrayLength());
            Assert.Equal("train-queue-second", queue[0].GetProperty("jobId").GetString());
            Assert.Equal(1, queue[0].GetProperty("minRanks").GetInt32());
        }
        var (_, statusText, _) = await Rae("cluster", "status");
        Assert.Contains("queue: 1 job(s) wait for devices", statusText);
        Assert.Matches(@"1\. train-queue-second: needs 1 rank\(s\)", statusText);
        var (showExit, showText, showError) = await Rae("jobs", "show", "train-queue-second");
        Assert.True(showExit == 0, showError);
        Assert.Contains("queued     place 1 in the device queue", showText);
        Assert.Contains("state      Pending", showText);

        var (cancelExit, _, cancelError) = await Rae("jobs", "cancel", "train-queue-first");
        Assert.True(cancelExit == 0, cancelError);
        await SchedulingTests.WaitUntilAsync(async () => (await second.GetStatus()).State == JobState.Completed, "the queued job runs once the device is free");
        Assert.Equal(JobState.Cancelled, (await first.GetStatus()).State);
        var (_, afterText, _) = await Rae("cluster", "status");
        Assert.Contains("queue: no job waits for devices", afterText);
    }
}
