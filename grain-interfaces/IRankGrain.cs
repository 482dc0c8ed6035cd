namespace RAE.GrainInterfaces;

/// <summary>Where a rank stands in a data-parallel group.</summary>
[GenerateSerializer, Immutable]
public sealed record RankAssignment(
    [property: Id(0)] string JobId,
    [property: Id(1)] int Generation,
    [property: Id(2)] int Rank,
    [property: Id(3)] int WorldSize,
    [property: Id(4)] string GroupKey,
    [property: Id(5)] TrainingJobSpec Spec);

/// <summary>What one rank did in one step; times in seconds. <see cref="NonFinite"/> is set (to the reason) when the
/// step's loss or synchronised gradient norm was NaN/Inf and the update was skipped: the replica did not move.</summary>
[GenerateSerializer, Immutable]
public sealed record RankStepResult(
    [property: Id(0)] int Rank,
    [property: Id(1)] long Step,
    [property: Id(2)] double Loss,
    [property: Id(3)] double LearningRate,
    [property: Id(4)] int Samples,
    [property: Id(5)] double ComputeSeconds,
    [property: Id(6)] double AllReduceSeconds,
    [property: Id(7)] double ApplySeconds,
    [property: Id(8)] double GradientNorm = 0,
    [property: Id(9)] string? NonFinite = null,
    [property: Id(10)] IReadOnlyDictionary<string, double>? Details = null,
    [property: Id(11)] double WallSeconds = 0);

/// <summary>
/// One per compute device a silo declares (key: <see cref="SiloBoundKey.Rank"/>), placed on that silo. It is only the
/// control surface: a dedicated worker thread holds the model replica and does the tensor work.
/// </summary>
public interface IRankGrain : IGrainWithStringKey
{
    /// <summary>Creates (or replaces) this device's worker for the job and joins the group given in the assignment.</summary>
    [ResponseTimeout("00:30:00")]
    Task Join(RankAssignment assignment);

    /// <summary>Makes every rank's parameters equal to rank 0's (a broadcast over the group); all ranks call it together.</summary>
    [ResponseTimeout("00:30:00")]
    Task SynchronizeParameters(string jobId);

    /// <summary>
    /// Computes gradients for this rank's shard of the step's global batch, all-reduces them, applies the update. A
    /// cancelled <paramref name="cancellationToken"/> stops the step between micro-batches and before the update (the
    /// replica keeps its state of the step before) with an <see cref="OperationCanceledException"/>.
    /// </summary>
    [ResponseTimeout("00:30:00")]
    Task<RankStepResult> RunStep(string jobId, long step, CancellationToken cancellationToken = default);

    /// <summary>
    /// Steps <paramref name="firstStep"/> .. <paramref name="firstStep"/> + <paramref name="count"/> − 1 back to back, one
    /// result each in step order, each with its own <see cref="RankStepResult.WallSeconds"/>: the ranks synchronise in
    /// their all-reduces, so short steps need no call per step. The run stops after a step whose update was skipped
    /// (<see cref="RankStepResult.NonFinite"/>; every rank skips the same one) and, when
    /// <paramref name="cancellationToken"/> is cancelled, before the next step (<see cref="OperationCanceledException"/>).
    /// </summary>
    [ResponseTimeout("00:30:00")]
    Task<RankStepResult[]> RunSteps(string jobId, long firstStep, int count, CancellationToken cancellationToken = default);

    /// <summary>Writes the worker's full state for an exact resume and returns where it went (not yet committed).</summary>
    [ResponseTimeout("00:30:00")]
    Task<CheckpointInfo> SaveCheckpoint(string jobId, long step, double? loss);

    [ResponseTimeout("00:30:00")]
    Task LoadCheckpoint(string jobId, CheckpointInfo checkpoint);

    /// <summary>The flattened parameters of the job's replica, for checks and exports.</summary>
    Task<float[]> GetParameters(string jobId);

    Task Leave(string jobId);

    /// <summary>The jobs this device holds a replica (worker and thread) of, in ordinal order.</summary>
    Task<IReadOnlyList<string>> HeldJobs();
}

/// <summary>Answers for one silo as a whole (key: <see cref="SiloBoundKey.Agent"/>), placed on that silo.</summary>
public interface ISiloAgentGrain : IGrainWithStringKey
{
    Task<SiloComputeInfo> GetComputeInfo();

    /// <summary>The silo's devices and the training and sampling workloads it implements.</summary>
    Task<SiloWorkloads> GetWorkloads();
}
