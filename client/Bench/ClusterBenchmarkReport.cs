namespace RAE.Client.Bench;

/// <summary>What `rae bench cluster` measures; sizes and workload of one run.</summary>
public sealed record ClusterBenchmarkSettings(
    int AllReduceElements,
    IReadOnlyList<RAE.GrainInterfaces.CollectiveTransport> Transports,
    IReadOnlyList<int> BucketElements,
    IReadOnlyList<int> PieceElements,
    IReadOnlyList<int> ChunkElements,
    IReadOnlyList<int> ChunksInFlight,
    int AllReduceWarmup,
    int AllReduceRepetitions,
    /// <summary>The benchmarked job: workload and its options (ranks, batch and steps are set per run).</summary>
    RAE.GrainInterfaces.TrainingJobSpec Job,
    int GlobalBatchSize,
    int Steps,
    int WarmupSteps,
    int Rounds,
    TimeSpan SiloStartTimeout);

public sealed record ClusterBenchmarkReport(
    string Membership,
    IReadOnlyList<AllReduceMeasurement> AllReduce,
    /// <summary>The machine's scheduling noise floor, measured before the silo processes start.</summary>
    SchedulingNoise Noise,
    TrainingWorkload Workload,
    TrainingConfigurationMeasurement TwoRanksOneThread,
    TrainingConfigurationMeasurement OneRankTwoThreads,
    TargetCheck CoordinationOverhead,
    TargetCheck Scaling);

/// <summary>
/// One transport and chunk size (for the ring: its bucket size, one bucket at a time, pipelined in pieces of
/// <see cref="PieceElements"/>; 0 for the group grain): every rank
/// reduces <see cref="BytesPerRank"/> bytes; a repetition takes as long as its slowest rank. MB are 10^6 bytes;
/// MegabytesPerSecond = bytes reduced per rank / median seconds (the "algorithm bandwidth"); BusMegabytesPerSecond =
/// that x 2(n-1)/n, what each link carries in a bandwidth-optimal all-reduce (equal for two ranks).
/// </summary>
public sealed record AllReduceMeasurement(
    string Transport,
    int Elements,
    long BytesPerRank,
    int ChunkElements,
    long ChunkBytes,
    int ChunksInFlight,
    int PieceElements,
    int Ranks,
    IReadOnlyList<string> Silos,
    IReadOnlyList<double> Seconds,
    double MedianSeconds,
    double MegabytesPerSecond,
    double BestMegabytesPerSecond,
    double BusMegabytesPerSecond,
    double MaxAbsoluteError);

public sealed record TrainingWorkload(string Name, IReadOnlyDictionary<string, string> Settings, int GlobalBatchSize, int MeasuredStepsPerRun, int WarmupStepsPerRun, int Rounds);

/// <summary>
/// Means over the measured steps of every round. StepSeconds is the loop period (time between consecutive completed
/// steps), so it includes the coordinator's work between steps. Compute, all-reduce and update are the slowest rank's;
/// OverheadSeconds = StepSeconds - (compute + all-reduce + update): the part inside the coordinator's step call that no
/// rank spent working (<see cref="InsideStepOverheadSeconds"/>) plus the gap between steps (<see cref="BetweenStepsSeconds"/>).
/// </summary>
public sealed record TrainingConfigurationMeasurement(
    int Ranks,
    int ThreadsPerRank,
    int MeasuredSteps,
    double StepsPerSecond,
    double StepSeconds,
    double ComputeSeconds,
    double AllReduceSeconds,
    double UpdateSeconds,
    double InsideStepOverheadSeconds,
    double BetweenStepsSeconds,
    double OverheadSeconds,
    double OverheadFraction,
    double FinalLoss);

public sealed record TargetCheck(string Description, double Value, double Target, bool Met);
