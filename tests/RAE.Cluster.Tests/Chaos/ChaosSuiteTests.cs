using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using RAE.Cluster.Tests.Failover;
using RAE.Grains.Storage;
using Xunit.Abstractions;

namespace RAE.Cluster.Tests.Chaos;

/// <summary>
/// The chaos suite, in the shape of Orleans' elastic chaos test: 3-4 silo processes (RAE_CHAOS_SILOS, default 3) under
/// Azure Table membership on an Azurite of its own, a fixed seed, and N rounds (RAE_CHAOS_ROUNDS, default 20;
/// RAE_CHAOS_SEED, default 13), each a kill -9 or a graceful stop of a random silo (started again at once), or Azurite
/// frozen for 2-5 s, while training, encode and sampling jobs run back to back, and a sampling job pinned to step 8 of
/// each training job (a checkpoint retention deletes at step 20 unless the pin holds it). At the end every job must have
/// completed with the bits of an undisturbed run: the training loss curve and final checkpoint, every latent shard once,
/// every sampling unit once; every committed checkpoint passes its checksum and none is missing; no pinned checkpoint
/// left the catalog or the store while its sampling job ran. Category "Chaos": the main suite excludes it,
/// `infra/chaos.sh` runs it as its own CI step.
/// </summary>
[Trait("Category", "Chaos")]
public sealed class ChaosSuiteTests(ITestOutputHelper log)
{
    /// <summary>Silo processes (RAE_CHAOS_SILOS): the issue's chaos shape allows 3 or 4; 3 by default, the count whose
    /// run time on the 2-core CI machine is known (4 adds a silo process and its restarts to every round).</summary>
    private static int Silos
    {
        get
        {
            var silos = Setting("RAE_CHAOS_SILOS", 3);
            return silos is 3 or 4 ? silos : throw new InvalidOperationException($"RAE_CHAOS_SILOS is {silos}: the chaos suite runs 3 or 4 silo processes.");
        }
    }
    private static readonly TimeSpan SiloStartTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan MembershipTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// A killed silo is declared dead after about 3 missed 3 s probes; two votes are needed, so one starved prober on the
    /// loaded 2-core machine cannot vote a healthy silo out alone.
    /// </summary>
    private static readonly Dictionary<string, string> Membership = new()
    {
        ["Rae:Silo:Membership:ProbeTimeoutSeconds"] = "3",
        ["Rae:Silo:Membership:NumMissedProbesLimit"] = "3",
        ["Rae:Silo:Membership:NumVotesForDeathDeclaration"] = "2",
        ["Rae:Silo:Membership:DeathVoteExpirationTimeoutSeconds"] = "30",
        ["Rae:Silo:Membership:TableRefreshTimeoutSeconds"] = "2",
        ["Rae:Silo:Membership:IAmAliveTablePublishTimeoutSeconds"] = "3",
    };

    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : fallback;

    [Fact]
    public async Task JobsUnderRandomSiloKillsStopsAndStoragePausesAllCompleteWithTheBitsOfAnUndisturbedRun()
    {
        var rounds = Setting("RAE_CHAOS_ROUNDS", 20);
        var seed = Setting("RAE_CHAOS_SEED", 13);
        var clock = Stopwatch.StartNew();
        await using var azurite = await PrivateAzurite.StartAsync();
        var cluster = await AzureSiloProcessCluster.StartAsync(azurite.ClusterConnectionString, Silos, Membership, SiloStartTimeout);
        await using (cluster)
        {
            log.WriteLine($"{Silos} silos up after {clock.Elapsed.TotalSeconds:0.0} s (cluster {cluster.ClusterId}, Azurite pid {azurite.ProcessId}); {rounds} rounds, seed {seed}");
            try
            {
                await RunAsync(cluster, azurite, rounds, seed, clock);
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                throw new Xunit.Sdk.XunitException($"{error.Message}{Environment.NewLine}{cluster.Diagnostics()}", error);
            }
        }
        log.WriteLine($"whole run {clock.Elapsed.TotalSeconds:0.0} s");
    }

    private async Task RunAsync(AzureSiloProcessCluster cluster, PrivateAzurite azurite, int rounds, int seed, Stopwatch clock)
    {
        var blobs = new AzureBlobStore(new AzureBlobStoreOptions { ConnectionString = azurite.BlobConnectionString, ContainerName = "rae" });
        var counters = new ChaosCounters();
        var workload = new ChaosWorkload(cluster, blobs, counters, log);
        await workload.PrepareAsync();
        log.WriteLine($"references done after {clock.Elapsed.TotalSeconds:0.0} s");

        var training = new ConcurrentQueue<TrainingOutcome>();
        var encode = new ConcurrentQueue<EncodeOutcome>();
        var sampling = new ConcurrentQueue<SamplingOutcome>();
        var pinned = new ConcurrentQueue<PinnedSamplingOutcome>();
        using var chaosOver = new CancellationTokenSource();
        // Each kind runs one job after another until the rounds are over, so every round lands on running jobs.
        var drivers = new[]
        {
            DriveAsync(workload.RunTrainingAsync, training, chaosOver.Token),
            DriveAsync(workload.RunEncodeAsync, encode, chaosOver.Token),
            DriveAsync(workload.RunSamplingAsync, sampling, chaosOver.Token),
            DrivePinnedAsync(workload, pinned, counters, chaosOver.Token),
        };

        var random = new Random(seed);
        for (var round = 1; round <= rounds; round++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 2000)));
            await RestartUnplannedExitsAsync(cluster, counters);
            var what = await PlayRoundAsync(cluster, azurite, random, counters);
            log.WriteLine($"round {round} at {clock.Elapsed.TotalSeconds:0.0} s: {what}");
        }
        await chaosOver.CancelAsync();
        log.WriteLine($"rounds over after {clock.Elapsed.TotalSeconds:0.0} s; waiting for the running jobs");
        await Task.WhenAll(drivers);
        log.WriteLine($"jobs over after {clock.Elapsed.TotalSeconds:0.0} s");
        var summary = counters.Summary(training, encode, sampling, pinned);
        log.WriteLine(summary);
        Console.WriteLine(summary);

        // Every job is checked, so that one run names every broken invariant rather than the first.
        var violations = new List<string>();
        async Task CheckAsync(Func<Task> verify)
        {
            try
            {
                await verify();
            }
            catch (Xunit.Sdk.XunitException violation)
            {
                violations.Add(violation.Message);
            }
        }
        foreach (var outcome in training) await CheckAsync(() => workload.VerifyAsync(outcome));
        foreach (var outcome in encode) await CheckAsync(() => workload.VerifyAsync(outcome));
        foreach (var outcome in sampling) await CheckAsync(() => workload.VerifyAsync(outcome));
        foreach (var outcome in pinned) await CheckAsync(() => workload.VerifyAsync(outcome));
        // The violations also go last in the output: a CI log that keeps only its tail still names them.
        foreach (var violation in violations)
        {
            log.WriteLine("violation: " + violation);
            Console.WriteLine("violation: " + violation);
        }
        Assert.True(violations.Count == 0,
            $"{violations.Count} broken invariant(s) over {training.Count + encode.Count + sampling.Count + pinned.Count} jobs:{Environment.NewLine}"
            + string.Join(Environment.NewLine, violations) + Environment.NewLine + summary);
        Assert.True(counters.Kills + counters.GracefulStops + counters.StoragePauses == rounds, summary);
        // The chaos reached the jobs: at least one of them had to re-form, resume or restore.
        Assert.True(training.Sum(t => t.Status.Recoveries) + encode.Sum(e => e.Status.Resumptions) + sampling.Sum(s => s.Status.Resumptions) > 0,
            "no job was ever disturbed: " + summary);
    }

    private static async Task DriveAsync<T>(Func<int, Task<T>> run, ConcurrentQueue<T> outcomes, CancellationToken chaosOver)
    {
        for (var wave = 1; !chaosOver.IsCancellationRequested; wave++) outcomes.Enqueue(await run(wave));
    }

    /// <summary>One pinned sampling job per training job, started once that job commits the pinned step.</summary>
    private static async Task DrivePinnedAsync(ChaosWorkload workload, ConcurrentQueue<PinnedSamplingOutcome> outcomes, ChaosCounters counters, CancellationToken chaosOver)
    {
        string? sampled = null;
        for (var wave = 1; !chaosOver.IsCancellationRequested; wave++)
        {
            if (workload.CurrentTrainingJobId is not { } training || training == sampled)
            {
                await Task.Delay(250, CancellationToken.None);
                wave--;
                continue;
            }
            sampled = training;
            if (await workload.RunPinnedSamplingAsync(training, wave) is { } outcome) outcomes.Enqueue(outcome);
            else counters.PinMissed();
        }
    }

    private static async Task<string> PlayRoundAsync(AzureSiloProcessCluster cluster, PrivateAzurite azurite, Random random, ChaosCounters counters)
    {
        var action = random.NextDouble();
        var victim = cluster.Silos[random.Next(cluster.Silos.Count)];
        if (action < 0.25)
        {
            var pause = TimeSpan.FromMilliseconds(random.Next(2000, 5000));
            await azurite.PauseAsync(pause);
            counters.StoragePause();
            return $"Azurite frozen for {pause.TotalSeconds:0.0} s";
        }
        var port = victim.Endpoints.SiloPort;
        string what;
        if (action < 0.65)
        {
            await victim.KillAsync();
            counters.Kill();
            what = $"killed {victim.Name} (pid {victim.ProcessId})";
        }
        else
        {
            var byItself = await victim.StopAsync(TimeSpan.FromSeconds(60));
            counters.GracefulStop(byItself);
            what = $"stopped {victim.Name} (pid {victim.ProcessId}){(byItself ? "" : ", killed after 60 s")}";
        }
        // A joining silo first checks that it reaches every silo the table lists as active: start the new one once the
        // old one is declared dead (a kill) or has left (a graceful stop), or its start waits for that anyway.
        await cluster.WaitUntilDeclaredDeadAsync(port, MembershipTimeout);
        var restarted = await RestartAsync(cluster, victim, counters);
        await cluster.WaitForActiveSilosAsync(Silos, MembershipTimeout);
        return $"{what}, restarted as pid {restarted.ProcessId}";
    }

    /// <summary>Starts the silo again; a start that times out on the loaded machine is tried once more.</summary>
    private static async Task<RAE.Client.Bench.SiloProcess> RestartAsync(AzureSiloProcessCluster cluster, RAE.Client.Bench.SiloProcess stopped, ChaosCounters counters)
    {
        try
        {
            return await cluster.RestartAsync(stopped);
        }
        catch (TimeoutException)
        {
            counters.SiloRestart();
            return await cluster.StartSiloAsync(stopped.Name);
        }
        finally
        {
            counters.SiloRestart();
        }
    }

    /// <summary>A silo that exited without being told (voted dead by mistake, crashed) is counted and started again.</summary>
    private async Task RestartUnplannedExitsAsync(AzureSiloProcessCluster cluster, ChaosCounters counters)
    {
        foreach (var silo in cluster.Silos.Where(s => s.HasExited).ToList())
        {
            counters.UnplannedSiloExit();
            log.WriteLine($"{silo.Name} exited on its own; last output:{Environment.NewLine}{silo.RecentOutput()}");
            await RestartAsync(cluster, silo, counters);
        }
        await cluster.WaitForActiveSilosAsync(Silos, MembershipTimeout);
    }
}
