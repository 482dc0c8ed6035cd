using System.Text.Json;
using RAE.Cluster.Tests.Client;

namespace RAE.Cluster.Tests.Scheduling;

/// <summary>The queue as the CLI shows it, on one embedded silo with one device.</summary>
public sealed class CliQueueTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>
{
    private Task<(int ExitCode, string Output, string Error)> Rae(params string[] args) =>
        Cli.RunAsync([.. args, "--gateway", silo.Gateway, "--cluster-id", "cli-test"]);

    private static string Config => Cli.RepositoryFile("configs/tiny/stage2-ddt-tiny.yaml");

    [Fact]
    public async Task OnOneDeviceTheSecondJobWaitsVisiblyInTheQueueAndRunsWhenTheFirstIsCancelled()
    {
        var (firstExit, _, firstError) = await Rae("train", Config, "--workload", "tiny-mlp", "--set", "training.max_steps=1000000", "--set", "training.ckpt_every=1000000", "--job-id", "train-queue-first");
        Assert.True(firstExit == 0, firstError);
        await SchedulingTests.WaitUntilAsync(async () => await StateAsync("train-queue-first") == "Running", "the first job runs");
        var (secondExit, secondOutput, secondError) = await Rae("train", Config, "--workload", "tiny-mlp", "--set", "training.max_steps=4", "--set", "training.ckpt_every=2", "--job-id", "train-queue-second");
        Assert.True(secondExit == 0, secondError);
        Assert.Contains("submitted train-queue-second", secondOutput);
        await SchedulingTests.WaitUntilAsync(async () => (await ShowAsync("train-queue-second")).TryGetProperty("queuePosition", out var place) && place.ValueKind == JsonValueKind.Number,
            "the second job waits in the queue");

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
        var (_, showText, _) = await Rae("jobs", "show", "train-queue-second");
        Assert.Contains("queued     place 1 in the device queue", showText);
        Assert.Contains("state      Pending", showText);

        var (cancelExit, _, cancelError) = await Rae("jobs", "cancel", "train-queue-first");
        Assert.True(cancelExit == 0, cancelError);
        await SchedulingTests.WaitUntilAsync(async () => await StateAsync("train-queue-second") == "Completed",
            "the queued job runs once the device is free");
        Assert.Equal("Cancelled", await StateAsync("train-queue-first"));
        var (_, afterText, _) = await Rae("cluster", "status");
        Assert.Contains("queue: no job waits for devices", afterText);
    }

    /// <summary>The job's status as `rae jobs show --json` prints it; an empty object while the registry does not know the job yet.</summary>
    private async Task<JsonElement> ShowAsync(string jobId)
    {
        var (exitCode, output, error) = await Rae("jobs", "show", jobId, "--json");
        if (exitCode == 1 && error.Contains($"'{jobId}' is unknown", StringComparison.Ordinal)) output = "{}";
        else Assert.True(exitCode == 0, error);
        using var document = JsonDocument.Parse(output);
        return document.RootElement.Clone();
    }

    private async Task<string?> StateAsync(string jobId) =>
        (await ShowAsync(jobId)).TryGetProperty("state", out var state) ? state.GetString() : null;
}
