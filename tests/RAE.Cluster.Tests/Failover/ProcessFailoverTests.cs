using System.Diagnostics;
using RAE.Cluster.Tests.Stage2;
using RAE.Cluster.Tests.Storage;
using RAE.GrainInterfaces;
using Xunit.Abstractions;

namespace RAE.Cluster.Tests.Failover;

public enum FailoverVictim
{
    /// <summary>Silo 0, started before the others: the primary silo under localhost clustering, which cannot be lost there.</summary>
    FirstSiloStarted,

    /// <summary>
    /// A silo started after the first: the one where the job's training coordinator is active when that is not silo 0
    /// (the job's state must then come back from grain storage), else the last one started (the coordinator survives).
    /// </summary>
    LaterSilo,
}

/// <summary>
/// Failover with real silo processes under Azure Table clustering (Azurite): a SIGKILLed silo that hosts a rank of a
/// running DiT^DH job is declared dead within seconds, and the job re-forms on the survivors from its last checkpoint.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ProcessFailoverTests(AzuriteFixture azurite, ITestOutputHelper log)
{
    private const int Silos = 3;
    private const int Ranks = 3; // one rank on every silo, so whichever silo is killed takes a rank with it
    // Long enough that the kill lands mid-run even when status reports lag a couple of seconds behind the steps.
    private const int Steps = 48;
    private const int CheckpointInterval = 3;
    private const int KillAtOrAfterStep = 7;

    [Theory]
    [InlineData(FailoverVictim.FirstSiloStarted)]
    [InlineData(FailoverVictim.LaterSilo)]
    public async Task KillingTheSiloProcessOfOneRankEndsInACompletedJobThatLostAtMostOneCheckpointInterval(FailoverVictim victimKind)
    {
        var clock = Stopwatch.StartNew();
        var cluster = await AzureSiloProcessCluster.StartAsync(azurite, Silos);
        await using (cluster)
        {
            log.WriteLine($"{Silos} silo processes up and connected after {clock.Elapsed.TotalSeconds:0.0} s (cluster {cluster.ClusterId})");
            try
            {
                await RunAndKillAsync(cluster, victimKind, clock);
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                throw new Xunit.Sdk.XunitException($"{error.Message}{Environment.NewLine}{cluster.Diagnostics()}", error);
            }
        }
        Assert.Empty(await cluster.FindLeftoversAsync());
    }

    private async Task RunAndKillAsync(AzureSiloProcessCluster cluster, FailoverVictim victimKind, Stopwatch clock)
    {
        // The silos really used this run's own membership table: one row per silo plus Orleans' version row.
        Assert.True(await cluster.CountMembershipRowsAsync() >= Silos + 1, $"membership table {cluster.MembershipTable} should list the {Silos} silos");

        var client = cluster.Client;
        // A global batch of 6 splits over 3 ranks before the kill and over the 2 survivors after it.
        var spec = DiTTestJobs.Spec(ranks: Ranks, globalBatch: 6, steps: Steps) with
        {
            CheckpointInterval = CheckpointInterval,
            CollectiveTimeout = TimeSpan.FromSeconds(5),
        };
        var jobId = await client.SubmitTrainingAsync(spec);
        var running = await AzureSiloProcessCluster.PollAsync(
            () => client.GetTrainingStatusAsync(jobId),
            s => s.Step >= KillAtOrAfterStep || s.State is not (JobState.Pending or JobState.Running),
            TimeSpan.FromSeconds(90),
            Describe);
        Assert.True(running.State == JobState.Running, "the job should still run when the silo is killed: " + Describe(running));
        Assert.Equal(Ranks, running.Ranks.Count);
        Assert.Equal(Silos, running.Ranks.Select(r => AzureSiloProcessCluster.SiloPortOf(r.SiloAddress)).Distinct().Count());

        var coordinatorSilo = cluster.SiloAt(
            await cluster.Management.GetActivationAddress(client.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId))
            ?? throw new InvalidOperationException($"The coordinator of job {jobId} has no activation."));
        var victim = victimKind switch
        {
            FailoverVictim.FirstSiloStarted => cluster.Silos[0],
            FailoverVictim.LaterSilo => coordinatorSilo != cluster.Silos[0] ? coordinatorSilo : cluster.Silos[^1],
            _ => throw new ArgumentOutOfRangeException(nameof(victimKind)),
        };
        var victimRank = running.Ranks.Single(r => AzureSiloProcessCluster.SiloPortOf(r.SiloAddress) == victim.Endpoints.SiloPort);
        var metricsBeforeKill = await client.GetMetricsAsync(jobId, 0);
        var atKill = await client.GetTrainingStatusAsync(jobId);
        await victim.KillAsync();
        var killedAt = clock.Elapsed;
        log.WriteLine($"killed {victim.Name} (pid {victim.ProcessId}, rank {victimRank.RankGrainKey}{(victim == coordinatorSilo ? ", the job's coordinator" : "")}) "
            + $"at step {atKill.Step}, last checkpoint {atKill.LastCheckpointStep}, after {killedAt.TotalSeconds:0.0} s");

        await cluster.WaitUntilDeclaredDeadAsync(victim.Endpoints.SiloPort, TimeSpan.FromSeconds(60));
        log.WriteLine($"membership declared {victim.Name} dead {(clock.Elapsed - killedAt).TotalSeconds:0.0} s after the kill");

        var final = await AzureSiloProcessCluster.PollAsync(
            () => client.GetTrainingStatusAsync(jobId),
            s => s.State is JobState.Completed or JobState.Failed or JobState.Cancelled,
            TimeSpan.FromSeconds(120),
            Describe);
        log.WriteLine($"job ended {final.State} {(clock.Elapsed - killedAt).TotalSeconds:0.0} s after the kill: {Describe(final)}");

        var context = $"killed {victim.Name} at step {atKill.Step} (checkpoint {atKill.LastCheckpointStep}); final: {Describe(final)}";
        Assert.True(final.State == JobState.Completed, context);
        Assert.Equal(Steps, final.Step);
        Assert.True(final.Recoveries >= 1, "the job should have re-formed its group: " + context);
        Assert.Equal(2, final.Ranks.Count); // two silos survive with one device each
        Assert.All(final.Ranks, r => Assert.NotEqual(victim.Endpoints.SiloPort, AzureSiloProcessCluster.SiloPortOf(r.SiloAddress)));
        Assert.NotNull(final.RestoredFromStep);
        var restoredFrom = final.RestoredFromStep!.Value;
        Assert.True(restoredFrom >= atKill.Step - CheckpointInterval, $"lost more than one checkpoint interval: {context}");
        Assert.True(restoredFrom >= (atKill.LastCheckpointStep ?? 0), $"the restore ignored the last committed checkpoint: {context}");
        Assert.Equal(0, restoredFrom % CheckpointInterval);

        // The metrics are continuous: every step exactly once and in order, each on the schedule, each loss finite; the
        // steps up to the restored checkpoint are the very records written before the kill, the rest were redone after it.
        var metrics = await client.GetMetricsAsync(jobId, 0);
        Assert.Equal(Enumerable.Range(1, Steps).Select(s => (long)s), metrics.Select(m => m.Step));
        Assert.All(metrics, m => Assert.True(double.IsFinite(m.Loss) && m.Loss > 0, $"step {m.Step} loss {m.Loss}"));
        Assert.All(metrics, m => Assert.Equal(ScheduledLearningRate(m.Step), m.LearningRate, 12));
        foreach (var before in metricsBeforeKill.Where(m => m.Step <= restoredFrom))
        {
            var after = metrics[(int)before.Step - 1];
            Assert.Equal((before.Loss, before.CompletedAt, before.Ranks), (after.Loss, after.CompletedAt, after.Ranks));
        }
        Assert.All(metrics.Where(m => m.Step > restoredFrom), m => Assert.Equal(2, m.Ranks));
        Assert.All(metricsBeforeKill, m => Assert.Equal(Ranks, m.Ranks));
        // Every step ran on the full group until the kill and on the two survivors after it; a second re-form under load
        // (the restore then comes from a checkpoint the survivors wrote) may move restoredFrom past steps they ran.
        Assert.All(metrics.Zip(metrics.Skip(1)), pair => Assert.True(pair.Second.Ranks <= pair.First.Ranks,
            $"the group grew from {pair.First.Ranks} ranks at step {pair.First.Step} to {pair.Second.Ranks} at step {pair.Second.Step}: {context}"));
        Assert.All(metrics, m => Assert.Contains(m.Ranks, new[] { Ranks, 2 }));

        // The job's state lives in this run's own grain-state container, where the re-activated coordinator found it.
        var blobs = await cluster.ListGrainStateBlobsAsync();
        Assert.Contains(blobs, name => name.Contains(jobId, StringComparison.Ordinal));
        log.WriteLine($"whole test {clock.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>DiTTestJobs.TinyConfig's schedule: warm-up from zero over 2 steps to 5e-3, then cosine to 1e-3 at step 40, then 1e-3.</summary>
    private static double ScheduledLearningRate(long step) =>
        step <= 2 ? 5e-3 * step / 2 : step > 40 ? 1e-3 : 1e-3 + 4e-3 * 0.5 * (1 + Math.Cos(Math.PI * (step - 3) / 38));

    private static string Describe(TrainingJobStatus s) =>
        $"{s.State} at step {s.Step}, checkpoint {s.LastCheckpointStep}, recoveries {s.Recoveries}, restored from {s.RestoredFromStep}, "
        + $"ranks [{string.Join(", ", s.Ranks.Select(r => r.SiloAddress))}]{(s.FailureReason is null ? "" : $", failure: {s.FailureReason}")}";
}
