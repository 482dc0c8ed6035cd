using RAE.GrainInterfaces;

namespace RAE.Grains.Workers;

/// <summary>Everything a worker needs to build its replica and find its shard of each global batch.</summary>
public sealed record RankWorkerContext(TrainingJobSpec Spec, int Rank, int WorldSize, string Device, int Threads, string? JobId = null);

/// <summary>Gradients of one rank for one step, flattened in the worker's gradient order (the same on every rank; parameter
/// order unless the worker says otherwise), with the mean loss over its shard.</summary>
public sealed record GradientResult(float[] Gradients, double Loss, int Samples);

/// <summary>
/// The model replica of one rank. All methods run on the rank's dedicated worker thread, never on the Orleans scheduler.
/// <see cref="Stage2.DiTRankWorker"/> trains DiT^DH ("dit-dh"); <see cref="TinyMlpWorker"/> ("tiny-mlp") is a small stand-in
/// for tests and benchmarks of the distributed loop.
/// </summary>
public interface IRankWorker : IDisposable
{
    int ParameterCount { get; }

    /// <summary>Builds the replica deterministically from the spec's seed. Called again with a new rank when the group re-forms.</summary>
    void Initialize(RankWorkerContext context);

    /// <summary>
    /// Gradients of the mean loss over this rank's shard of step <paramref name="step"/>'s global batch (accumulated over
    /// micro-batches). A cancelled <paramref name="cancellationToken"/> ends it between micro-batches with an
    /// <see cref="OperationCanceledException"/>; the parameters and optimizer state are untouched either way.
    /// The vector may be the worker's own gradient buffer, reused by its next call: the caller may overwrite it in place
    /// (the all-reduce leaves the mean there) and pass it to <see cref="ApplyUpdate"/>, but must not keep it past the step.
    /// </summary>
    GradientResult ComputeGradients(long step, CancellationToken cancellationToken = default);

    /// <summary>Applies the averaged gradients (identical on every rank; the vector <see cref="ComputeGradients"/> returned,
    /// overwritten with the mean, or any other of the same length); returns the learning rate used.</summary>
    double ApplyUpdate(long step, float[] averagedGradients);

    /// <summary>Global L2 norm of the averaged gradients of the last <see cref="ApplyUpdate"/>, before clipping.</summary>
    double LastGradientNorm { get; }

    float[] GetParameters();

    void SetParameters(float[] parameters);

    /// <summary>
    /// Writes everything needed for an exact resume (parameters, optimizer moments, schedule position) to
    /// <paramref name="destination"/>, front to back: a DiT^DH-S state is over 3 GB, more than one array can hold.
    /// </summary>
    void SaveState(Stream destination);

    /// <summary>Restores a state written by <see cref="SaveState"/> from a readable, seekable stream.</summary>
    void LoadState(Stream source);
}

/// <summary>
/// A worker whose backward reports the finished prefix of its gradient vector as it goes, so the rank grain can start
/// the all-reduce before backward ends (PyTorch DDP's bucketed overlap). Its vector is laid out in the order backward
/// finishes it (last layers first), the same on every rank.
/// </summary>
public interface IOverlappingRankWorker : IRankWorker
{
    /// <summary>The vector <see cref="ComputeGradients(long, Collectives.GradientReadiness, CancellationToken)"/> fills and
    /// returns, fixed from <see cref="IRankWorker.Initialize"/> on; null when this replica cannot report progress (its
    /// gradients live on a GPU and reach host memory only at the end).</summary>
    float[]? OverlapVector { get; }

    /// <summary>As <see cref="IRankWorker.ComputeGradients(long, CancellationToken)"/>, advancing <paramref name="readiness"/>
    /// (over <see cref="OverlapVector"/>) during the last micro-batch's backward. It never completes or fails it: the caller
    /// does once this returns or throws, and must not read what lies beyond <see cref="Collectives.GradientReadiness.Ready"/>.</summary>
    GradientResult ComputeGradients(long step, Collectives.GradientReadiness readiness, CancellationToken cancellationToken = default);
}

/// <summary>
/// A worker whose step needs more than one all-reduce (Stage 1: the last-layer gradients of the adaptive weight, the
/// decoder's gradients, then each discriminator update's). The rank grain all-reduces what
/// <see cref="IRankWorker.ComputeGradients"/> returns, then hands each group mean to <see cref="ContinueStep"/> and
/// all-reduces what it returns, until it returns null: that last mean goes to <see cref="IRankWorker.ApplyUpdate"/>.
/// Workers without it keep the one-gradient protocol.
/// </summary>
public interface IMultiPhaseRankWorker : IRankWorker
{
    /// <summary>Takes the group mean of the current phase; returns the next phase's local gradients, or null when the mean
    /// belongs to the step's last phase (then passed to <see cref="IRankWorker.ApplyUpdate"/>).</summary>
    float[]? ContinueStep(long step, float[] averaged);

    /// <summary>Per-step values beyond loss and learning rate (rank-local means; the coordinator averages them over ranks).</summary>
    IReadOnlyDictionary<string, double> LastStepDetails { get; }
}

/// <summary>In-memory state round trips for small workers and tests; real checkpoints stream (<see cref="IRankWorker.SaveState"/>).</summary>
public static class RankWorkerStateExtensions
{
    public static byte[] GetState(this IRankWorker worker)
    {
        using var stream = new MemoryStream();
        worker.SaveState(stream);
        return stream.ToArray();
    }

    public static void LoadState(this IRankWorker worker, byte[] state)
    {
        ArgumentNullException.ThrowIfNull(state);
        using var stream = new MemoryStream(state, writable: false);
        worker.LoadState(stream);
    }
}

/// <summary>Creates workers for one workload name (the spec's <see cref="TrainingJobSpec.Workload"/>).</summary>
public interface IRankWorkerFactory
{
    string Workload { get; }

    IRankWorker Create();
}
