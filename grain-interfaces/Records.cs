using RAE.Configuration;

namespace RAE.GrainInterfaces;

public enum JobState
{
    Pending,
    Running,
    Recovering,
    Completed,
    Failed,
    Cancelled,
}

/// <summary>
/// A training job as a client submits it (build one with <see cref="TrainingJobSpecs.FromConfig"/>). <see cref="Workload"/>
/// names the rank worker: "dit-dh" (a DiT^DH from <see cref="Config"/>) or "tiny-mlp" (a small stand-in, <see cref="TinyMlp"/>).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TrainingJobSpec
{
    [Id(0)] public string Workload { get; init; } = TinyMlpOptions.WorkloadName;
    /// <summary>Data-parallel ranks wanted; the job uses at most this many and re-forms with fewer when silos go.</summary>
    [Id(1)] public int Ranks { get; init; } = 1;
    /// <summary>The least ranks the job starts with (it waits in the queue until it gets them); null: exactly <see cref="Ranks"/>.
    /// A job with fewer than <see cref="Ranks"/> grows onto free devices at its checkpoints.</summary>
    [Id(17)] public int? MinRanks { get; init; }
    /// <summary>Samples per optimizer step over all ranks: ranks x micro-batch x accumulation.</summary>
    [Id(2)] public int GlobalBatchSize { get; init; } = 8;
    [Id(3)] public int GradientAccumulation { get; init; } = 1;
    [Id(4)] public int Steps { get; init; } = 10;
    [Id(5)] public double LearningRate { get; init; } = 1e-3;
    [Id(6)] public double WeightDecay { get; init; }
    [Id(7)] public double GradientClip { get; init; }
    [Id(8)] public int WarmupSteps { get; init; }
    [Id(9)] public long Seed { get; init; } = 0;
    /// <summary>Commit a checkpoint every this many steps (0: only at the end).</summary>
    [Id(10)] public int CheckpointInterval { get; init; }
    /// <summary>How long a collective waits for all ranks before it gives up.</summary>
    [Id(12)] public TimeSpan CollectiveTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>The job's reference configuration (model, transport, optimizer, schedule, EMA, data); required by "dit-dh".</summary>
    [Id(13)] public JobConfiguration? Config { get; init; }
    /// <summary>Which committed checkpoints the job keeps.</summary>
    [Id(14)] public CheckpointRetentionPolicy Retention { get; init; } = CheckpointRetentionPolicy.Default;
    /// <summary>Model and data of the "tiny-mlp" workload; ignored by others.</summary>
    [Id(15)] public TinyMlpOptions TinyMlp { get; init; } = new();
    /// <summary>
    /// Failed attempts in a row (a step that fails, or a coordinator whose silo was lost mid-run) after which the job ends
    /// Failed with the last error; counted in the job's persisted state, so process crashes count too.
    /// </summary>
    [Id(16)] public int MaxAttempts { get; init; } = DefaultMaxAttempts;
    /// <summary>Online evaluation every few steps (config <c>eval</c>); null: none.</summary>
    [Id(18)] public OnlineEvaluationSpec? OnlineEvaluation { get; init; }

    public const int DefaultMaxAttempts = 5;

    /// <summary>The least ranks the job starts with: <see cref="MinRanks"/>, else <see cref="Ranks"/>.</summary>
    public int MinimumRanks => MinRanks ?? Ranks;

    /// <summary>"N", or "MIN..MAX" for a range.</summary>
    public string DescribeRanks() => MinimumRanks == Ranks ? $"{Ranks}" : $"{MinimumRanks}..{Ranks}";
}

/// <summary>The "tiny-mlp" stand-in workload: input features, hidden width, data set size, and an extra delay per gradient
/// computation that stands in for a heavy model in failure and benchmark tests.</summary>
[GenerateSerializer, Immutable]
public sealed record TinyMlpOptions
{
    public const string WorkloadName = "tiny-mlp";

    [Id(0)] public int InputFeatures { get; init; } = 8;
    [Id(1)] public int Hidden { get; init; } = 16;
    [Id(2)] public int DatasetSize { get; init; } = 1024;
    [Id(3)] public TimeSpan StepDelay { get; init; }
    /// <summary>Stands in for a hung worker: rank <see cref="StallRank"/> (none when negative) blocks its gradient
    /// computation of step <see cref="StallAtStep"/> for <see cref="StallFor"/>, once per process and job.</summary>
    [Id(4)] public int StallRank { get; init; } = -1;
    [Id(5)] public long StallAtStep { get; init; }
    [Id(6)] public TimeSpan StallFor { get; init; }

    /// <summary>The problems of these options, empty when they are valid.</summary>
    public IEnumerable<string> Problems()
    {
        if (InputFeatures < 1) yield return $"TinyMlp.InputFeatures must be positive, got {InputFeatures}";
        if (Hidden < 1) yield return $"TinyMlp.Hidden must be positive, got {Hidden}";
        if (DatasetSize < 1) yield return $"TinyMlp.DatasetSize must be positive, got {DatasetSize}";
        if (StepDelay < TimeSpan.Zero) yield return $"TinyMlp.StepDelay must be zero or positive, got {StepDelay}";
        if (StallFor < TimeSpan.Zero) yield return $"TinyMlp.StallFor must be zero or positive, got {StallFor}";
    }
}

/// <summary>One device of one silo that can hold a rank.</summary>
[GenerateSerializer, Immutable]
public sealed record RankSlot([property: Id(0)] string SiloAddress, [property: Id(1)] string Device, [property: Id(2)] string RankGrainKey);

/// <summary>What a silo offers for compute.</summary>
[GenerateSerializer, Immutable]
public sealed record SiloComputeInfo([property: Id(0)] string SiloAddress, [property: Id(1)] IReadOnlyList<string> Devices, [property: Id(2)] int ThreadsPerRank);

/// <summary>What one silo can run: its devices and the workloads of each kind its rank and sampling workers implement.</summary>
[GenerateSerializer, Immutable]
public sealed record SiloWorkloads(
    [property: Id(0)] string SiloAddress,
    [property: Id(1)] IReadOnlyList<string> Devices,
    [property: Id(2)] IReadOnlyList<string> TrainingWorkloads,
    [property: Id(3)] IReadOnlyList<string> SamplingWorkloads);

/// <summary>One silo that offers a workload, with the devices it would run it on.</summary>
[GenerateSerializer, Immutable]
public sealed record WorkloadPlacement([property: Id(0)] string SiloAddress, [property: Id(1)] IReadOnlyList<string> Devices);

/// <summary>A workload the cluster offers (training or sampling) and every silo that offers it.</summary>
[GenerateSerializer, Immutable]
public sealed record WorkloadOffer(
    [property: Id(0)] JobKind Kind,
    [property: Id(1)] string Workload,
    [property: Id(2)] IReadOnlyList<WorkloadPlacement> Placements);

/// <summary>Metrics of one optimizer step.</summary>
[GenerateSerializer, Immutable]
public sealed record StepMetrics
{
    [Id(0)] public long Step { get; init; }
    /// <summary>Mean loss over the global batch (rank losses averaged in rank order).</summary>
    [Id(1)] public double Loss { get; init; }
    [Id(2)] public double LearningRate { get; init; }
    [Id(3)] public double StepSeconds { get; init; }
    /// <summary>Samples per second each rank processed, in rank order.</summary>
    [Id(4)] public IReadOnlyList<double> SamplesPerSecondPerRank { get; init; } = [];
    [Id(5)] public int Ranks { get; init; }
    /// <summary>Part of the step spent outside compute and the all-reduce (coordination overhead), seconds.</summary>
    [Id(6)] public double CoordinationSeconds { get; init; }
    [Id(7)] public double AllReduceSeconds { get; init; }
    /// <summary>Forward and backward time of the slowest rank, seconds.</summary>
    [Id(8)] public double ComputeSeconds { get; init; }
    /// <summary>Optimizer-update time of the slowest rank, seconds.</summary>
    [Id(9)] public double ApplySeconds { get; init; }
    /// <summary>When the coordinator had every rank's result (in a window of several steps per call, the window's end less
    /// the later steps' <see cref="StepSeconds"/>); the gap between steps is loop overhead outside <see cref="StepSeconds"/>.</summary>
    [Id(10)] public DateTimeOffset CompletedAt { get; init; }
    /// <summary>Global L2 norm of the averaged gradients before clipping (the reference's grad_norm); rank 0's, all ranks agree.</summary>
    [Id(11)] public double GradientNorm { get; init; }
    /// <summary>
    /// What a workload logs beyond loss and learning rate, averaged over the ranks (Stage 1: reconstruction, perceptual,
    /// GAN and discriminator losses, the adaptive weight λ, discriminator accuracy, mean logits real/fake); null when none.
    /// </summary>
    [Id(12)] public IReadOnlyDictionary<string, double>? Details { get; init; }
    /// <summary>How many steps the coordinator's call to the ranks ran, this one among them: 1, or more when steps are short
    /// (a window of steps per call, see the coordinator's step window).</summary>
    [Id(13)] public int StepsPerCall { get; init; } = 1;
}

[GenerateSerializer, Immutable]
public sealed record TrainingJobStatus
{
    [Id(0)] public string JobId { get; init; } = "";
    [Id(1)] public JobState State { get; init; }
    [Id(2)] public TrainingJobSpec Spec { get; init; } = new();
    [Id(3)] public long Step { get; init; }
    [Id(4)] public IReadOnlyList<RankSlot> Ranks { get; init; } = [];
    [Id(5)] public int GroupGeneration { get; init; }
    [Id(6)] public long? LastCheckpointStep { get; init; }
    [Id(7)] public string? FailureReason { get; init; }
    [Id(8)] public StepMetrics? LastMetrics { get; init; }
    [Id(9)] public DateTimeOffset CreatedAt { get; init; }
    [Id(10)] public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>How many times the group was re-formed after a rank was lost.</summary>
    [Id(11)] public int Recoveries { get; init; }
    /// <summary>The checkpoint step the group was last restored from after a re-formation; null when never restored.</summary>
    [Id(12)] public long? RestoredFromStep { get; init; }
    /// <summary>Failed attempts in a row so far (persisted); the job fails when it reaches <see cref="TrainingJobSpec.MaxAttempts"/>.</summary>
    [Id(13)] public int FailedAttempts { get; init; }
    /// <summary>The error of the last failed attempt, null when none failed since the job last made progress.</summary>
    [Id(14)] public string? LastError { get; init; }
    /// <summary>True once a cancel was requested (persisted): the job ends Cancelled even if its silo is lost first.</summary>
    [Id(15)] public bool CancelRequested { get; init; }
    /// <summary>The job's place in the device queue (1 = next) while it waits for its ranks; null when it does not wait.</summary>
    [Id(16)] public int? QueuePosition { get; init; }
    /// <summary>The online evaluations so far, one per evaluation step, oldest first.</summary>
    [Id(17)] public IReadOnlyList<OnlineEvaluationRecord> Evaluations { get; init; } = [];
}

public enum JobKind
{
    Training,
    Sampling,
    Evaluation,
    Encoding,
}

[GenerateSerializer, Immutable]
public sealed record JobSummary(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobKind Kind,
    [property: Id(2)] JobState State,
    [property: Id(3)] long Progress,
    [property: Id(4)] long Total,
    [property: Id(5)] DateTimeOffset CreatedAt,
    [property: Id(6)] DateTimeOffset UpdatedAt,
    [property: Id(7)] string? FailureReason);

/// <summary>
/// A committed checkpoint as the catalog lists it. <see cref="Generation"/> is the group generation of the rank that
/// wrote it (part of its blob name); 0 for checkpoints written before names carried one.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record CheckpointInfo(
    [property: Id(0)] string JobId,
    [property: Id(1)] long Step,
    [property: Id(2)] string Location,
    [property: Id(3)] long SizeBytes,
    [property: Id(4)] string Sha256,
    [property: Id(5)] double? Loss,
    [property: Id(6)] DateTimeOffset CommittedAt,
    [property: Id(7)] int Generation = 0);

/// <summary>
/// A sampling job: N samples from a trained checkpoint, split into work units across ranks (build one with
/// <see cref="SamplingJobSpecs.FromConfig"/>). The weights come from a training job's committed checkpoint
/// (<see cref="SourceTrainingJobId"/>) or from a file (<see cref="CheckpointPath"/>, else the config's stage_2.ckpt); the
/// configuration is <see cref="Config"/>, else the one stored in the training job's checkpoint.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SamplingJobSpec
{
    public const string RaeWorkload = "rae";

    [Id(0)] public string Workload { get; init; } = RaeWorkload;
    [Id(1)] public string? SourceTrainingJobId { get; init; }
    [Id(2)] public long? SourceCheckpointStep { get; init; }
    [Id(3)] public int Samples { get; init; } = 16;
    [Id(4)] public int UnitSize { get; init; } = 4;
    /// <summary>Labels are drawn from [0, Classes); 0 means every class of the configuration (misc.num_classes), fixed when the job starts.</summary>
    [Id(5)] public int Classes { get; init; } = 1;
    /// <summary>"equal" (N / classes per class, as the reference) or "random".</summary>
    [Id(6)] public string Labels { get; init; } = "equal";
    [Id(7)] public long Seed { get; init; }
    /// <summary>The configuration; null takes the config.yaml stored in the source training job's checkpoint.</summary>
    [Id(9)] public JobConfiguration? Config { get; init; }
    /// <summary>The Stage-2 weights file (safetensors or torch.save); overrides stage_2.ckpt; not allowed with a source training job.</summary>
    [Id(10)] public string? CheckpointPath { get; init; }
    /// <summary>The part of a training checkpoint (or torch.save file) sampled; null: the EMA weights, or for a file the reference's EMA-first rule.</summary>
    [Id(11)] public CheckpointWeights? Weights { get; init; }
    /// <summary>Blob folder of the results; null: samples/{job id}.</summary>
    [Id(12)] public string? Output { get; init; }
    /// <summary>At most this many sampling workers (0: every device of every silo).</summary>
    [Id(13)] public int MaxWorkers { get; init; }
    /// <summary>Whether decoded units are also written as PNGs.</summary>
    [Id(14)] public bool WritePngs { get; init; } = true;
    /// <summary>A pause after each unit, for tests and demos.</summary>
    [Id(15)] public TimeSpan UnitDelay { get; init; }
    /// <summary>Replaces the configuration's sampler.precision (the reference's sample --precision); null keeps it.</summary>
    [Id(16)] public ComputePrecision? Precision { get; init; }
}

/// <summary>Which weights of a training state are sampled.</summary>
public enum CheckpointWeights
{
    Ema,
    Model,
}

[GenerateSerializer, Immutable]
public sealed record SamplingJobStatus
{
    [Id(0)] public string JobId { get; init; } = "";
    [Id(1)] public JobState State { get; init; }
    [Id(2)] public SamplingJobSpec Spec { get; init; } = new();
    [Id(3)] public int UnitsTotal { get; init; }
    [Id(4)] public int UnitsDone { get; init; }
    [Id(5)] public string? FailureReason { get; init; }
    /// <summary>The FID <c>.npz</c> once written (decoded jobs), else the folder of the per-unit results.</summary>
    [Id(6)] public string? OutputLocation { get; init; }
    [Id(7)] public int SamplesDone { get; init; }
    /// <summary>Samples per second over the units finished since the job (re)started.</summary>
    [Id(8)] public double SamplesPerSecond { get; init; }
    /// <summary>Blob folder of the per-unit results (<c>{unit:06d}.safetensors</c>).</summary>
    [Id(9)] public string? UnitsLocation { get; init; }
    /// <summary>Blob folder of the PNGs (<c>{index:06d}.png</c>); null when the job keeps latents.</summary>
    [Id(10)] public string? ImagesLocation { get; init; }
    [Id(11)] public DateTimeOffset CreatedAt { get; init; }
    [Id(12)] public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>How many times a new activation (after a restart or on another silo) continued the job.</summary>
    [Id(13)] public int Resumptions { get; init; }
}

/// <summary>Raised for a request that names something the cluster does not know or asks for something impossible.</summary>
[GenerateSerializer]
public sealed class RaeJobException : Exception
{
    public RaeJobException(string message) : base(message) { }
    public RaeJobException(string message, Exception inner) : base(message, inner) { }
}
