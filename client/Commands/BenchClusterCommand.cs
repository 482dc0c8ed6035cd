using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RAE.Client.Bench;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives;
using RAE.Grains.Collectives.Ring;
using RAE.Grains.Workers;

namespace RAE.Client.Commands;

/// <summary>
/// `rae bench cluster`: all-reduce throughput between two silo processes for a DiT^DH-S-sized gradient, the
/// coordination overhead of a 2-rank training step, and steps/s of 1 rank x 2 threads against 2 ranks x 1 thread.
/// Options: --elements (default 196,500,000: DiT^DH-S's parameter count per the spec), --collective ring,orleans (the
/// transports to measure), --bucket-elements N[,N...] and --piece-elements N[,N...] (ring), --chunk-elements N[,N...] (group grain),
/// --chunks-in-flight N[,N...] (every combination with the chunk sizes is measured),
/// --allreduce-repeats, --allreduce-warmup, --workload (tiny-mlp), --batch (global batch), --input, --hidden, --dataset
/// (tiny-mlp sizes), --config FILE with --set key=value (the dit-dh configuration), --steps, --warmup-steps, --rounds, --json.
/// </summary>
public sealed class BenchClusterCommand : ICliCommand
{
    /// <summary>DiT^DH-S parameter count from the spec (≈ 196.5 M, counting pos_embed and W; the trainable count is a little lower).</summary>
    public const int DiTDHSmallParameters = 196_500_000;

    private readonly Option<int> _elements = Count("--elements", "fp32 elements of the all-reduce probe (DiT^DH-S's parameter count)", DiTDHSmallParameters);
    private readonly Option<string> _collective = new("--collective")
    {
        HelpName = "ring|orleans[,...]",
        Description = "All-reduce transports to measure: the TCP ring between ranks, the star through the group grain",
        DefaultValueFactory = _ => "ring,orleans",
    };

    private readonly Option<string> _buckets = List("--bucket-elements", "Ring bucket sizes to measure", RingCollectiveCommunicator.DefaultBucketElements);
    private readonly Option<string> _pieces = List("--piece-elements", "Ring piece sizes to measure (every combination with the bucket sizes)", RingCollectiveCommunicator.DefaultPieceElements);
    private readonly Option<string> _chunks = List("--chunk-elements", "Chunk sizes of the group-grain all-reduce to measure", OrleansCollectiveCommunicator.DefaultChunkElements);
    private readonly Option<string> _inFlight = List("--chunks-in-flight", "Chunks in flight to measure (every combination with the chunk sizes)", OrleansCollectiveCommunicator.DefaultChunksInFlight);
    private readonly Option<int> _repeats = Count("--allreduce-repeats", "Measured all-reduces per combination", 3);
    private readonly Option<int> _allReduceWarmup = Count("--allreduce-warmup", "Unmeasured all-reduces first", 1);
    private readonly Option<string> _workload = new("--workload") { HelpName = "NAME", Description = "Rank worker of the scaling runs", DefaultValueFactory = _ => TinyMlpWorker.WorkloadName };
    private readonly Option<int> _batch = Count("--batch", "Global batch of the scaling runs (even: two ranks share it)", 512);
    private readonly Option<int> _input = Count("--input", "tiny-mlp input width", 512);
    private readonly Option<int> _hidden = Count("--hidden", "tiny-mlp hidden width", 2048);
    private readonly Option<int> _dataset = Count("--dataset", "tiny-mlp dataset size", 4096);
    private readonly Option<string> _configFile = new("--config") { HelpName = "FILE", Description = "Training configuration of the scaling runs (for a workload that reads one, e.g. dit-dh)" };
    private readonly Option<string[]> _overrides = CliOptions.Repeatable("--set", "KEY=VALUE", "Override a value of --config (repeatable)");
    // tiny-mlp's steps take ~50 ms: 20 measured steps after 2 caught the 1-rank run's first, not yet compiled steps and
    // reported 2x1/1x2 0.90 where 200 after 10 give 0.69. A DiT^DH-S step takes ~25 s on this CPU.
    private const int TinyMlpSteps = 200, TinyMlpWarmupSteps = 10, OtherSteps = 3, OtherWarmupSteps = 1;
    private readonly Option<int?> _steps = new("--steps")
    {
        HelpName = "N", Description = $"Measured steps per scaling run (default {TinyMlpSteps} for tiny-mlp, {OtherSteps} for other workloads)",
    };
    private readonly Option<int?> _warmupSteps = new("--warmup-steps")
    {
        HelpName = "N", Description = $"Unmeasured steps per scaling run (default {TinyMlpWarmupSteps} for tiny-mlp, {OtherWarmupSteps} for other workloads)",
    };
    private readonly Option<int> _rounds = Count("--rounds", "Alternating rounds of the two configurations", 2);
    private readonly Option<int> _startTimeout = Count("--silo-start-timeout", "Seconds a silo process may take to join", 180);
    private readonly Option<bool> _json = CliOptions.Json();

    public BenchClusterCommand() =>
        Command = new Command("cluster", "Benchmark all-reduce MB/s between silo processes, step coordination overhead and 2x1 vs 1x2 scaling")
        {
            _elements, _collective, _buckets, _pieces, _chunks, _inFlight, _repeats, _allReduceWarmup, _workload, _batch, _input, _hidden, _dataset, _configFile, _overrides, _steps, _warmupSteps,
            _rounds, _startTimeout, _json,
        };

    public string Name => "bench cluster";

    public Command Command { get; }

    public async Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var json = parsed.GetValue(_json);
        var elements = parsed.GetValue(_elements);
        var transports = ParseTransports(parsed.GetRequiredValue(_collective));
        var buckets = ParseList(parsed.GetRequiredValue(_buckets), "bucket-elements");
        var pieces = ParseList(parsed.GetRequiredValue(_pieces), "piece-elements");
        var chunks = ParseList(parsed.GetRequiredValue(_chunks), "chunk-elements");
        var inFlight = ParseList(parsed.GetRequiredValue(_inFlight), "chunks-in-flight");
        var repeats = parsed.GetValue(_repeats);
        var allReduceWarmup = parsed.GetValue(_allReduceWarmup);
        var workload = parsed.GetRequiredValue(_workload);
        var batch = parsed.GetValue(_batch);
        var job = new TrainingJobSpec { Workload = workload };
        if (workload == TinyMlpWorker.WorkloadName)
        {
            job = job with
            {
                TinyMlp = new TinyMlpOptions
                {
                    InputFeatures = Positive(parsed.GetValue(_input), "input"),
                    Hidden = Positive(parsed.GetValue(_hidden), "hidden"),
                    DatasetSize = Positive(parsed.GetValue(_dataset), "dataset"),
                },
            };
        }
        var overrides = parsed.GetRequiredValue(_overrides);
        if (parsed.GetValue(_configFile) is { } configPath)
            job = job with { Config = JobConfiguration.From(JobSpecFactory.LoadConfig(configPath, overrides)) };
        else if (overrides.Length > 0)
            throw new UsageException("--set overrides need --config");
        var tinyMlp = workload == TinyMlpWorker.WorkloadName;
        var steps = parsed.GetValue(_steps) ?? (tinyMlp ? TinyMlpSteps : OtherSteps);
        var warmupSteps = parsed.GetValue(_warmupSteps) ?? (tinyMlp ? TinyMlpWarmupSteps : OtherWarmupSteps);
        var rounds = parsed.GetValue(_rounds);
        var startTimeout = parsed.GetValue(_startTimeout);
        Positive(elements, "elements");
        Positive(repeats, "allreduce-repeats");
        if (allReduceWarmup < 0) throw new UsageException($"--allreduce-warmup must not be negative, got {allReduceWarmup}");
        Positive(steps, "steps");
        Positive(warmupSteps, "warmup-steps");
        Positive(rounds, "rounds");
        Positive(startTimeout, "silo-start-timeout");
        if (batch < 2 || batch % 2 != 0) throw new UsageException($"--batch must be even (two ranks share it), got {batch}");

        var settings = new ClusterBenchmarkSettings(elements, transports, buckets, pieces, chunks, inFlight, allReduceWarmup, repeats, job, batch, steps, warmupSteps, rounds,
            TimeSpan.FromSeconds(startTimeout));
        ClusterBenchmarkReport report;
        try
        {
            report = await ClusterBenchmark.RunAsync(settings, json ? null : line => output.WriteLine(line));
        }
        catch (Exception failure) when (failure is InvalidOperationException or TimeoutException or OrleansException)
        {
            error.WriteLine($"rae bench cluster: {failure.Message}");
            return 1;
        }
        if (json)
            output.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        else
            PrintTable(report, output);
        return 0;
    }

    private static Option<int> Count(string name, string description, int defaultValue) =>
        new(name) { HelpName = "N", Description = description, DefaultValueFactory = _ => defaultValue };

    private static Option<string> List(string name, string description, int defaultValue) =>
        new(name) { HelpName = "N[,N...]", Description = description, DefaultValueFactory = _ => defaultValue.ToString(CultureInfo.InvariantCulture) };

    private static int Positive(int value, string name) =>
        value >= 1 ? value : throw new UsageException($"--{name} must be positive, got {value}");

    private static List<int> ParseList(string text, string name)
    {
        var values = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < 1)
                throw new UsageException($"--{name} expects positive integers separated by commas, got '{text}'");
            values.Add(value);
        }
        return values.Count > 0 ? values : throw new UsageException($"--{name} needs at least one value");
    }

    private static List<CollectiveTransport> ParseTransports(string text)
    {
        var transports = new List<CollectiveTransport>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Enum.TryParse<CollectiveTransport>(part, ignoreCase: true, out var transport) || !Enum.IsDefined(transport))
                throw new UsageException($"--collective expects ring or orleans separated by commas, got '{text}'");
            if (!transports.Contains(transport)) transports.Add(transport);
        }
        return transports.Count > 0 ? transports : throw new UsageException("--collective needs at least one transport");
    }

    private static void PrintTable(ClusterBenchmarkReport report, TextWriter output)
    {
        var invariant = CultureInfo.InvariantCulture;
        output.WriteLine($"cluster: {report.Membership}");
        var first = report.AllReduce[0];
        output.WriteLine(string.Create(invariant,
            $"all-reduce (sum, fixed order) between {first.Ranks} ranks on silos {string.Join(" and ", first.Silos)}: {first.Elements:N0} fp32 = {first.BytesPerRank / 1e6:F1} MB per rank"));
        output.WriteLine($"{"transport",9} {"chunk elems",12} {"chunk MB",9} {"in flight",9} {"piece",9} {"median s",9} {"best s",8} {"MB/s",9} {"best MB/s",10} {"bus MB/s",9} {"max |err|",10}");
        foreach (var row in report.AllReduce)
            output.WriteLine(string.Create(invariant,
                $"{row.Transport,9} {row.ChunkElements,12:N0} {row.ChunkBytes / 1e6,9:F2} {row.ChunksInFlight,9} {row.PieceElements,9:N0} {row.MedianSeconds,9:F3} {row.Seconds.Min(),8:F3} {row.MegabytesPerSecond,9:F1} {row.BestMegabytesPerSecond,10:F1} {row.BusMegabytesPerSecond,9:F1} {row.MaxAbsoluteError,10:G3}"));
        output.WriteLine("(ring: chunk = bucket, reduced one bucket at a time in pieces of the given elements; bus MB/s = MB/s x 2(n-1)/n)");
        var workload = report.Workload;
        output.WriteLine(string.Create(invariant,
            $"training: {workload.Name} ({string.Join(", ", workload.Settings.Select(s => $"{s.Key} {s.Value}"))}), global batch {workload.GlobalBatchSize}, {workload.MeasuredStepsPerRun} measured + {workload.WarmupStepsPerRun} warm-up steps per job, {workload.Rounds} alternating round(s)"));
        output.WriteLine($"{"configuration",-20} {"steps/s",8} {"step ms",8} {"fwd+bwd",8} {"allreduce",10} {"update",7} {"in-step",8} {"between",8} {"overhead",9}");
        foreach (var (name, row) in new[] { ("2 ranks x 1 thread", report.TwoRanksOneThread), ("1 rank x 2 threads", report.OneRankTwoThreads) })
            output.WriteLine(string.Create(invariant,
                $"{name,-20} {row.StepsPerSecond,8:F2} {row.StepSeconds * 1e3,8:F1} {row.ComputeSeconds * 1e3,8:F1} {row.AllReduceSeconds * 1e3,10:F1} {row.UpdateSeconds * 1e3,7:F1} {row.InsideStepOverheadSeconds * 1e3,8:F2} {row.BetweenStepsSeconds * 1e3,8:F2} {row.OverheadFraction,9:P2}"));
        output.WriteLine("(ms per step; overhead = step - fwd+bwd - allreduce - update of the slowest rank = in-step + between-steps; in-step includes the");
        output.WriteLine(" hand-over to the rank's worker thread and back; where a worker overlaps its all-reduce with backward (DiT^DH on the CPU,");
        output.WriteLine(" Rae:Silo:OverlapGradients), allreduce is the part left after backward)");
        var noise = report.Noise;
        output.WriteLine(string.Create(invariant,
            $"scheduling noise floor: {noise.Threads} threads spinning {noise.Seconds:0} s lost {noise.LostFraction:P2} of their time in {noise.Gaps} gaps > {noise.ThresholdSeconds * 1e3:0.#} ms (p90 {noise.Percentile90GapSeconds * 1e3:F2} ms, longest {noise.LongestGapSeconds * 1e3:F2} ms)"));
        output.WriteLine(string.Create(invariant,
            $"coordination overhead per 2-rank step: {report.TwoRanksOneThread.OverheadSeconds * 1e3:F2} ms = {report.CoordinationOverhead.Value:P2} of the step (target < {report.CoordinationOverhead.Target:P0}): {(report.CoordinationOverhead.Met ? "met" : "NOT met")}"));
        output.WriteLine(string.Create(invariant,
            $"scaling: 2x1 / 1x2 steps/s = {report.Scaling.Value:F3} (target >= {report.Scaling.Target:F2}): {(report.Scaling.Met ? "met" : "NOT met")}"));
    }
}
