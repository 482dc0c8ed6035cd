using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using System.Security.Cryptography.X509Certificates;
using RAE.GrainInterfaces;
using RAE.Silo.Security;

namespace RAE.Client.Bench;

/// <summary>
/// Runs `rae bench cluster`: two silo processes form one cluster (Orleans localhost/development clustering: the second
/// silo joins through the first one's silo port; no storage service needed) and a third silo process forms a
/// one-silo cluster with two threads per rank. The all-reduce runs between probe grains on the two silos; training
/// jobs alternate between the 2-rank cluster (1 thread per rank) and the 1-rank cluster (2 threads), so machine noise
/// hits both configurations alike.
/// </summary>
public static class ClusterBenchmark
{
    public const string Membership = "Orleans localhost (development) clustering through the primary silo's port; silos are separate `rae bench silo` processes on loopback";

    private static readonly TimeSpan NoiseDuration = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan NoiseThreshold = TimeSpan.FromMilliseconds(0.2);
    private const int NoiseThreads = 2; // one per core of the two configurations (2 ranks x 1 thread, 1 rank x 2 threads)

    public static async Task<ClusterBenchmarkReport> RunAsync(ClusterBenchmarkSettings settings, Action<string>? progress = null)
    {
        var root = Path.Combine(Path.GetTempPath(), "rae-bench-cluster-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var pairId = "rae-bench-pair-" + Path.GetFileName(root)[^8..];
        var soloId = "rae-bench-solo-" + Path.GetFileName(root)[^8..];
        var silos = new List<SiloProcess>();
        try
        {
            // Before any silo exists: once they run, their JIT's background recompilation alone took 35-41% of both cores
            // for seconds after the all-reduce probes.
            progress?.Invoke($"scheduling noise: {NoiseThreads} spinning threads for {NoiseDuration.TotalSeconds:0} s before the silos start ...");
            var noise = SchedulingNoiseProbe.Measure(NoiseDuration, NoiseThreshold, NoiseThreads);
            progress?.Invoke("starting silo processes ...");
            var primaryEndpoints = SiloEndpoints.Allocate();
            var soloEndpoints = SiloEndpoints.Allocate();
            Task<SiloProcess>[] starts =
            [
                SiloProcess.StartAsync("pair-0", pairId, Path.Combine(root, "pair"), primaryEndpoints, 1, settings.SiloStartTimeout),
                SiloProcess.StartAsync("solo", soloId, Path.Combine(root, "solo"), soloEndpoints, 2, settings.SiloStartTimeout),
            ];
            try
            {
                await Task.WhenAll(starts);
            }
            finally
            {
                silos.AddRange(starts.Where(start => start.IsCompletedSuccessfully).Select(start => start.Result));
            }
            // The second silo of the pair joins through the first one's silo port, so it starts once the first is up.
            var secondEndpoints = SiloEndpoints.Allocate(primaryEndpoints.SiloPort);
            silos.Add(await SiloProcess.StartAsync("pair-1", pairId, Path.Combine(root, "pair"), secondEndpoints, 1, settings.SiloStartTimeout));

            using var pair = await ConnectAsync(pairId, [primaryEndpoints.GatewayPort, secondEndpoints.GatewayPort], expectedSilos: 2);
            using var solo = await ConnectAsync(soloId, [soloEndpoints.GatewayPort], expectedSilos: 1);
            var pairGrains = pair.Services.GetRequiredService<IClusterClient>();
            var soloGrains = solo.Services.GetRequiredService<IClusterClient>();

            var allReduce = new List<AllReduceMeasurement>();
            RingTlsMaterial? ringTls = null;
            foreach (var transport in settings.Transports)
            {
                if (transport == CollectiveTransport.Ring)
                {
                    foreach (var bucket in settings.BucketElements)
                    {
                        foreach (var piece in settings.PieceElements)
                        {
                            progress?.Invoke($"ring all-reduce of {settings.AllReduceElements:N0} elements in buckets of {bucket:N0}, pieces of {piece:N0} ...");
                            allReduce.Add(await MeasureAllReduceAsync(pairGrains, settings, transport, bucket, 1, piece));
                            progress?.Invoke("the same over mutual TLS ...");
                            allReduce.Add(await MeasureAllReduceAsync(pairGrains, settings, transport, bucket, 1, piece, ringTls ??= BenchRingTls(root)));
                        }
                    }
                    continue;
                }
                foreach (var chunk in settings.ChunkElements)
                {
                    foreach (var inFlight in settings.ChunksInFlight)
                    {
                        progress?.Invoke($"all-reduce through the group grain of {settings.AllReduceElements:N0} elements in chunks of {chunk:N0}, {inFlight} in flight ...");
                        allReduce.Add(await MeasureAllReduceAsync(pairGrains, settings, transport, chunk, inFlight, 0));
                    }
                }
            }

            var pairSteps = new List<IReadOnlyList<StepMetrics>>();
            var soloSteps = new List<IReadOnlyList<StepMetrics>>();
            for (var round = 1; round <= settings.Rounds; round++)
            {
                progress?.Invoke($"round {round}/{settings.Rounds}: 2 ranks x 1 thread ...");
                pairSteps.Add(await RunJobAsync(pairGrains, settings, ranks: 2));
                progress?.Invoke($"round {round}/{settings.Rounds}: 1 rank x 2 threads ...");
                soloSteps.Add(await RunJobAsync(soloGrains, settings, ranks: 1));
            }
            var twoByOne = TrainingStatistics.Summarize(2, 1, pairSteps, settings.WarmupSteps);
            var oneByTwo = TrainingStatistics.Summarize(1, 2, soloSteps, settings.WarmupSteps);

            await Task.WhenAll(pair.StopAsync(), solo.StopAsync());
            return new ClusterBenchmarkReport(
                Membership,
                allReduce,
                noise,
                new TrainingWorkload(settings.Job.Workload, Describe(settings.Job), settings.GlobalBatchSize, settings.Steps, settings.WarmupSteps, settings.Rounds),
                twoByOne,
                oneByTwo,
                new TargetCheck("coordination overhead of a 2-rank step, fraction of step time (target: below)", twoByOne.OverheadFraction, 0.02, twoByOne.OverheadFraction < 0.02),
                new TargetCheck("steps/s of 2 ranks x 1 thread over 1 rank x 2 threads (target: at least)", twoByOne.StepsPerSecond / oneByTwo.StepsPerSecond, 0.9,
                    twoByOne.StepsPerSecond / oneByTwo.StepsPerSecond >= 0.9));
        }
        finally
        {
            await Task.WhenAll(silos.Select(s => s.DisposeAsync().AsTask()));
            TryDelete(root);
        }
    }

    private static async Task<IHost> ConnectAsync(string clusterId, int[] gatewayPorts, int expectedSilos)
    {
        var host = new HostBuilder()
            .UseOrleansClient(client => client.UseLocalhostClustering(gatewayPorts, clusterId, clusterId))
            .ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning))
            .Build();
        await host.StartAsync();
        var management = host.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while ((await management.GetHosts(onlyActive: true)).Count < expectedSilos)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Cluster {clusterId} did not reach {expectedSilos} active silo(s) within 60 s.");
            await Task.Delay(200);
        }
        return host;
    }

    /// <summary>A throwaway development authority and silo certificate (as `rae cluster certificates` makes) for the TLS ring probe.</summary>
    private static RingTlsMaterial BenchRingTls(string root)
    {
        var files = DevelopmentCertificates.Create(Path.Combine(root, "ring-tls"));
        using var authority = X509CertificateLoader.LoadCertificateFromFile(files.AuthorityPath);
        return new RingTlsMaterial(File.ReadAllBytes(files.SiloCertificatePath), File.ReadAllText(files.PasswordPath), authority.RawData);
    }

    private static async Task<AllReduceMeasurement> MeasureAllReduceAsync(IClusterClient grains, ClusterBenchmarkSettings settings, CollectiveTransport transport, int chunkElements, int chunksInFlight, int pieceElements,
        RingTlsMaterial? ringTls = null)
    {
        var silos = (await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys.OrderBy(s => s.ToParsableString(), StringComparer.Ordinal).ToList();
        var group = "bench-allreduce-" + Guid.NewGuid().ToString("N");
        var results = await Task.WhenAll(silos.Select((silo, rank) =>
            grains.GetGrain<ICollectiveProbeGrain>(SiloBoundKey.Create(silo, ICollectiveProbeGrain.KeySuffix)).MeasureAllReduce(
                new AllReduceProbe(group, rank, silos.Count, settings.AllReduceElements, chunkElements, settings.AllReduceWarmup, settings.AllReduceRepetitions, chunksInFlight, transport, pieceElements, ringTls))));
        // A repetition lasts until its slowest rank has the result.
        var seconds = Enumerable.Range(0, settings.AllReduceRepetitions).Select(i => results.Max(r => r.Seconds[i])).ToList();
        var bytes = 4L * settings.AllReduceElements;
        var median = TrainingStatistics.Median(seconds);
        var algorithmMegabytesPerSecond = bytes / 1e6 / median;
        return new AllReduceMeasurement(ringTls is null ? transport.ToString() : $"{transport}/TLS", settings.AllReduceElements, bytes, chunkElements, 4L * chunkElements, chunksInFlight, pieceElements, silos.Count,
            results.Select(r => r.SiloAddress).ToList(), seconds, median, algorithmMegabytesPerSecond, bytes / 1e6 / seconds.Min(),
            algorithmMegabytesPerSecond * 2 * (silos.Count - 1) / silos.Count, results.Max(r => r.MaxAbsoluteError));
    }

    /// <summary>The workload's options as the report prints them.</summary>
    private static IReadOnlyDictionary<string, string> Describe(TrainingJobSpec job) => job.Config is { } config
        ? new Dictionary<string, string>(StringComparer.Ordinal) { ["config"] = config.SourceName, ["config_sha256"] = config.Sha256 }
        : new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["input"] = job.TinyMlp.InputFeatures.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["hidden"] = job.TinyMlp.Hidden.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["dataset"] = job.TinyMlp.DatasetSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };

    private static async Task<IReadOnlyList<StepMetrics>> RunJobAsync(IClusterClient grains, ClusterBenchmarkSettings settings, int ranks)
    {
        var spec = settings.Job with
        {
            Ranks = ranks,
            GlobalBatchSize = settings.GlobalBatchSize,
            Steps = settings.WarmupSteps + settings.Steps,
            LearningRate = 1e-3,
            Seed = 1,
            CollectiveTimeout = TimeSpan.FromMinutes(5),
        };
        var jobId = await grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(spec);
        var coordinator = grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        while (true)
        {
            var status = await coordinator.GetStatus();
            if (status.State == JobState.Completed)
            {
                if (status.Ranks.Count != ranks)
                    throw new InvalidOperationException($"Benchmark job {jobId} ran on {status.Ranks.Count} rank(s), expected {ranks}.");
                return await coordinator.GetMetrics(0);
            }
            if (status.State is JobState.Failed or JobState.Cancelled)
                throw new InvalidOperationException($"Benchmark job {jobId} ({ranks} rank(s)) ended {status.State}: {status.FailureReason}");
            await Task.Delay(100);
        }
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS to clean from the temp folder.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
