using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Collectives;
using RAE.Grains.Placement;
using RAE.Grains.Workers;
using RAE.Models.Training;

namespace RAE.Grains.Training;

/// <summary>
/// The control surface of one device of one silo. Per job it holds a replica: a worker on a dedicated thread and the
/// communicator of the job's current group. Tensor work never runs on the Orleans scheduler.
/// </summary>
[SiloBoundPlacement]
public sealed class RankGrain(
    IGrainFactory grainFactory,
    IEnumerable<IRankWorkerFactory> workerFactories,
    IOptions<RankDeviceOptions> deviceOptions,
    ICheckpointPayloadStore checkpointPayloads,
    ILocalSiloDetails silo,
    ILogger<RankGrain> logger) : Grain, IRankGrain
{
    private readonly Dictionary<string, Replica> _replicas = new(StringComparer.Ordinal);

    private string Device
    {
        get
        {
            var (_, suffix) = SiloBoundKey.Parse(this.GetPrimaryKeyString());
            return suffix.StartsWith("rank:", StringComparison.Ordinal) ? suffix["rank:".Length..]
                : throw new RaeJobException($"Grain key '{this.GetPrimaryKeyString()}' is not a rank key (it has no 'rank:<device>' suffix).");
        }
    }

    public async Task Join(RankAssignment assignment)
    {
        var device = Device;
        if (!deviceOptions.Value.Devices.Contains(device, StringComparer.Ordinal))
            throw new RaeJobException($"Silo {SiloBoundKey.Parse(this.GetPrimaryKeyString()).Silo} declares no device '{device}' (it has: {string.Join(", ", deviceOptions.Value.Devices)}).");
        var factory = workerFactories.FirstOrDefault(f => f.Workload == assignment.Spec.Workload)
            ?? throw new RaeJobException($"Workload '{assignment.Spec.Workload}' has no rank worker on this silo (known: {string.Join(", ", workerFactories.Select(f => f.Workload))}).");

        if (_replicas.TryGetValue(assignment.JobId, out var previous))
        {
            // A re-formed group keeps the worker thread but rebuilds the replica for the new rank and world size, once the
            // thread is free: one still stuck in an earlier step gets the collective timeout, then the replica is dropped.
            try
            {
                await previous.Thread.InvokeAsync(static () => { }).WaitAsync(assignment.Spec.CollectiveTimeout);
            }
            catch (TimeoutException)
            {
                _replicas.Remove(assignment.JobId);
                previous.Dispose();
                throw new TimeoutException($"Rank '{this.GetPrimaryKeyString()}' cannot join generation {assignment.Generation} of job '{assignment.JobId}': " +
                    $"its device worker is still busy with an earlier step after the collective timeout ({assignment.Spec.CollectiveTimeout.TotalSeconds:0.###} s); its replica is dropped.");
            }
            previous.Assignment = assignment;
            previous.Communicator.Dispose();
            previous.Communicator = Communicator(assignment, device);
            await previous.Thread.InvokeAsync(() => InitializeOnWorkerThread(previous.Worker, Context(assignment, device)));
            return;
        }

        var thread = new DedicatedWorkerThread($"rae-rank-{device}-{assignment.JobId}");
        var worker = factory.Create();
        try
        {
            await thread.InvokeAsync(() => InitializeOnWorkerThread(worker, Context(assignment, device)));
        }
        catch
        {
            thread.Dispose();
            worker.Dispose();
            throw;
        }
        var communicator = Communicator(assignment, device);
        _replicas[assignment.JobId] = new Replica(assignment, thread, worker, communicator);
        logger.LogInformation("Rank {Rank}/{World} of job {Job} joined on device {Device} ({Collective}, all-reduce {Overlap})", assignment.Rank, assignment.WorldSize,
            assignment.JobId, device, communicator.GetType().Name,
            deviceOptions.Value.OverlapGradients && worker is IOverlappingRankWorker { OverlapVector: not null } ? "overlapped with backward" : "after backward");
    }

    public async Task SynchronizeParameters(string jobId)
    {
        var replica = Require(jobId);
        var count = replica.Worker.ParameterCount;
        var mine = replica.Communicator.Rank == 0 ? await replica.Thread.InvokeAsync(replica.Worker.GetParameters) : null;
        var root = await replica.Communicator.BroadcastAsync(mine, count, root: 0);
        if (replica.Communicator.Rank != 0) await replica.Thread.InvokeAsync(() => replica.Worker.SetParameters(root));
        await replica.Communicator.BarrierAsync();
    }

    public async Task<RankStepResult[]> RunSteps(string jobId, long firstStep, int count, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var replica = Require(jobId);
        if (RunsWholeStepsOnWorkerThread(replica))
        {
            var (rank, communicator) = (replica.Assignment.Rank, replica.Communicator);
            return await replica.Thread.InvokeAsync(() =>
            {
                var results = new List<RankStepResult>(count);
                for (var step = firstStep; step < firstStep + count; step++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var result = RunWholeStepOnWorkerThread(replica.Worker, communicator, rank, step, cancellationToken);
                    results.Add(result);
                    if (result.NonFinite is not null) break;
                }
                return results.ToArray();
            });
        }
        var ran = new List<RankStepResult>(count);
        for (var step = firstStep; step < firstStep + count; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var result = await RunStep(jobId, step, cancellationToken);
            ran.Add(result);
            if (result.NonFinite is not null) break;
        }
        return ran.ToArray();
    }

    public async Task<RankStepResult> RunStep(string jobId, long step, CancellationToken cancellationToken = default)
    {
        var replica = Require(jobId);
        if (RunsWholeStepsOnWorkerThread(replica))
        {
            var (rank, communicator) = (replica.Assignment.Rank, replica.Communicator);
            return await replica.Thread.InvokeAsync(() => RunWholeStepOnWorkerThread(replica.Worker, communicator, rank, step, cancellationToken));
        }
        var wall = Stopwatch.StartNew();
        var (gradients, computeSeconds, allReduceSeconds) = await ComputeAndAllReduceAsync(replica, step, cancellationToken);
        // The vector is the worker's for this step (often its gradient buffer): the mean is already in it.
        var averaged = gradients.Gradients;
        var clock = Stopwatch.StartNew();
        if (replica.Worker is IMultiPhaseRankWorker phased)
        {
            (averaged, var phaseSeconds) = await RunLaterPhasesAsync(replica, phased, step, averaged, cancellationToken);
            computeSeconds += phaseSeconds.Compute;
            allReduceSeconds += phaseSeconds.AllReduce;
            clock.Restart();
        }
        // The last point to stop: past it the update is applied whole, so a cancelled step never half-moves a replica.
        cancellationToken.ThrowIfCancellationRequested();
        var update = await replica.Thread.InvokeAsync(() => ApplyUpdateOnWorkerThread(replica.Worker, step, averaged));
        return new RankStepResult(replica.Assignment.Rank, step, gradients.Loss, update.LearningRate, gradients.Samples,
            computeSeconds, allReduceSeconds, clock.Elapsed.TotalSeconds, update.GradientNorm, update.NonFinite, update.Details, wall.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// A step of a worker whose all-reduce follows its backward, in one hand-over to its thread: backward, the all-reduce
    /// on that same thread (<see cref="ICollectiveCommunicator.AllReduceInPlace"/>) and the update. A short step (tiny-mlp:
    /// ~15 ms) otherwise paid four more thread wake-ups, each up to a scheduler tick when two ranks share two vCPUs.
    /// </summary>
    private static RankStepResult RunWholeStepOnWorkerThread(IRankWorker worker, ICollectiveCommunicator communicator, int rank, long step,
        CancellationToken cancellationToken)
    {
        var wall = Stopwatch.StartNew();
        var clock = Stopwatch.StartNew();
        var gradients = worker.ComputeGradients(step, cancellationToken);
        var computeSeconds = clock.Elapsed.TotalSeconds;
        cancellationToken.ThrowIfCancellationRequested();
        clock.Restart();
        communicator.AllReduceInPlace(gradients.Gradients, ReduceOperation.Mean);
        var allReduceSeconds = clock.Elapsed.TotalSeconds;
        // The last point to stop: past it the update is applied whole, so a cancelled step never half-moves a replica.
        cancellationToken.ThrowIfCancellationRequested();
        clock.Restart();
        var update = ApplyUpdateOnWorkerThread(worker, step, gradients.Gradients);
        return new RankStepResult(rank, step, gradients.Loss, update.LearningRate, gradients.Samples,
            computeSeconds, allReduceSeconds, clock.Elapsed.TotalSeconds, update.GradientNorm, update.NonFinite, update.Details, wall.Elapsed.TotalSeconds);
    }

    private static (double LearningRate, double GradientNorm, string? NonFinite, IReadOnlyDictionary<string, double>? Details) ApplyUpdateOnWorkerThread(
        IRankWorker worker, long step, float[] averaged)
    {
        try
        {
            var learningRate = worker.ApplyUpdate(step, averaged);
            return (learningRate, worker.LastGradientNorm, null, (worker as IMultiPhaseRankWorker)?.LastStepDetails);
        }
        catch (NonFiniteTrainingException skipped)
        {
            // Every replica sees the same averaged gradients, so all of them skip this step: the coordinator fails the job.
            return (double.NaN, skipped.GradientNorm, skipped.Message, null);
        }
    }

    private bool RunsWholeStepsOnWorkerThread(Replica replica) => replica.Worker is not IMultiPhaseRankWorker && !OverlapsBackward(replica);

    private bool OverlapsBackward(Replica replica) => deviceOptions.Value.OverlapGradients && replica.Communicator.WorldSize > 1
        && replica.Worker is IOverlappingRankWorker { OverlapVector: not null };

    /// <summary>
    /// The gradients of the step and their group mean, written over them. A worker that reports its backward's progress
    /// (<see cref="IOverlappingRankWorker"/>, unless <see cref="RankDeviceOptions.OverlapGradients"/> is off) has its
    /// finished buckets all-reduced while backward still runs; the all-reduce time is then what remains after backward.
    /// </summary>
    private async Task<(GradientResult Gradients, double ComputeSeconds, double AllReduceSeconds)> ComputeAndAllReduceAsync(
        Replica replica, long step, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        if (!OverlapsBackward(replica) || replica.Worker is not IOverlappingRankWorker { OverlapVector: { } vector } overlapping)
        {
            var computed = await replica.Thread.InvokeAsync(() => replica.Worker.ComputeGradients(step, cancellationToken));
            var computeSeconds = clock.Elapsed.TotalSeconds;
            cancellationToken.ThrowIfCancellationRequested();
            clock.Restart();
            await replica.Communicator.AllReduceInPlaceAsync(computed.Gradients, ReduceOperation.Mean);
            return (computed, computeSeconds, clock.Elapsed.TotalSeconds);
        }

        var readiness = new GradientReadiness(vector.Length);
        var reduce = replica.Communicator.AllReduceInPlaceAsync(vector, readiness, ReduceOperation.Mean);
        GradientResult gradients;
        try
        {
            gradients = await replica.Thread.InvokeAsync(() => overlapping.ComputeGradients(step, readiness, cancellationToken));
            if (!ReferenceEquals(gradients.Gradients, vector))
                throw new InvalidOperationException($"Rank worker {overlapping.GetType().Name} returned another vector than the one it reported progress on.");
        }
        catch (Exception error)
        {
            // The all-reduce stops at once (the ring breaks, so the other ranks fail now instead of at their timeout);
            // the computation's own error is what the caller needs.
            readiness.Fail(error);
            await reduce.ContinueWith(static _ => { }, TaskScheduler.Default);
            throw;
        }
        readiness.Complete();
        var backwardSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        try
        {
            await reduce;
        }
        catch (CollectiveException) when (cancellationToken.IsCancellationRequested)
        {
            // A cancelled step's peers may have broken the ring on their way out: that is the cancellation, not a failure.
        }
        cancellationToken.ThrowIfCancellationRequested();
        return (gradients, backwardSeconds, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The phases after the first of a multi-phase worker: each group mean goes back to the worker, which answers
    /// with the next phase's gradients (all-reduced in turn) or null; returns the last mean and the time spent.</summary>
    private static async Task<(float[] Averaged, (double Compute, double AllReduce) Seconds)> RunLaterPhasesAsync(
        Replica replica, IMultiPhaseRankWorker worker, long step, float[] averaged, CancellationToken cancellationToken)
    {
        double compute = 0, allReduce = 0;
        var clock = Stopwatch.StartNew();
        while (await replica.Thread.InvokeAsync(() => worker.ContinueStep(step, averaged)) is { } next)
        {
            cancellationToken.ThrowIfCancellationRequested();
            compute += clock.Elapsed.TotalSeconds;
            clock.Restart();
            await replica.Communicator.AllReduceInPlaceAsync(next, ReduceOperation.Mean);
            allReduce += clock.Elapsed.TotalSeconds;
            clock.Restart();
            averaged = next;
        }
        return (averaged, (compute + clock.Elapsed.TotalSeconds, allReduce));
    }

    /// <summary>The worker streams its state into a scratch file, which is then uploaded: a DiT^DH-S training state is
    /// over 3 GB, so it is never held in memory as one block.</summary>
    public async Task<CheckpointInfo> SaveCheckpoint(string jobId, long step, double? loss)
    {
        var replica = Require(jobId);
        await using var scratch = ScratchFile.Create();
        await replica.Thread.InvokeAsync(() => replica.Worker.SaveState(scratch));
        scratch.Position = 0;
        // The blob name carries this replica's group generation: an old group's rank that outlived its eviction writes
        // beside a committed checkpoint, never over it, and the catalog refuses its commit.
        return await checkpointPayloads.WriteAsync(jobId, step, scratch, loss, replica.Assignment.Generation);
    }

    /// <summary>Downloads the payload into a scratch file (its checksum is verified at the last byte) before the worker
    /// reads it, so a corrupt or truncated payload never reaches the replica.</summary>
    public async Task LoadCheckpoint(string jobId, CheckpointInfo checkpoint)
    {
        var replica = Require(jobId);
        await using var scratch = ScratchFile.Create();
        try
        {
            await using var payload = await checkpointPayloads.OpenReadAsync(checkpoint);
            await payload.CopyToAsync(scratch);
        }
        catch (Exception error) when (error is InvalidDataException or FileNotFoundException && error.InnerException is not null)
        {
            // The store's own exception inside has no codec: the caller gets the message (which says it all) in a type
            // that crosses the grain boundary, so a coordinator can tell a corrupt checkpoint from other failures.
            throw error is InvalidDataException ? new InvalidDataException(error.Message) : new FileNotFoundException(error.Message, checkpoint.Location);
        }
        scratch.Position = 0;
        await replica.Thread.InvokeAsync(() => replica.Worker.LoadState(scratch));
    }

    public async Task<float[]> GetParameters(string jobId)
    {
        var replica = Require(jobId);
        return await replica.Thread.InvokeAsync(replica.Worker.GetParameters);
    }

    public Task Leave(string jobId)
    {
        if (_replicas.Remove(jobId, out var replica)) replica.Dispose();
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<string>> HeldJobs() =>
        Task.FromResult<IReadOnlyList<string>>(_replicas.Keys.Order(StringComparer.Ordinal).ToList());

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        foreach (var replica in _replicas.Values) replica.Dispose();
        _replicas.Clear();
        return Task.CompletedTask;
    }

    /// <summary>Bounds the worker's intra-op threads (set on the worker thread itself, before any tensor work), then builds the replica.</summary>
    private static void InitializeOnWorkerThread(IRankWorker worker, RankWorkerContext context)
    {
        TorchSharp.torch.set_num_threads(context.Threads);
        worker.Initialize(context);
    }

    /// <summary>The silo's transport (NCCL instead on a CUDA device where it loads); a ring listens on the silo's advertised address.</summary>
    private ICollectiveCommunicator Communicator(RankAssignment assignment, string device) =>
        CollectiveCommunicators.Create(deviceOptions.Value.Collective, device, grainFactory, assignment.GroupKey, assignment.Rank, assignment.WorldSize,
            silo.SiloAddress.Endpoint.Address, logger, deviceOptions.Value.RingTls);

    private RankWorkerContext Context(RankAssignment assignment, string device) =>
        new(assignment.Spec, assignment.Rank, assignment.WorldSize, device, deviceOptions.Value.ThreadsPerRank, assignment.JobId);

    private Replica Require(string jobId) =>
        _replicas.TryGetValue(jobId, out var replica) ? replica
            : throw new RaeJobException($"Rank '{this.GetPrimaryKeyString()}' holds no replica of job '{jobId}'; the group must be (re-)formed first.");

    private sealed class Replica(RankAssignment assignment, DedicatedWorkerThread thread, IRankWorker worker, ICollectiveCommunicator communicator) : IDisposable
    {
        public RankAssignment Assignment { get; set; } = assignment;
        public DedicatedWorkerThread Thread { get; } = thread;
        public IRankWorker Worker { get; } = worker;
        public ICollectiveCommunicator Communicator { get; set; } = communicator;

        public void Dispose()
        {
            Communicator.Dispose();
            // The worker's thread frees its tensors, then freed managed and heap pages go back to the kernel: the tuned
            // allocator would otherwise keep the replica's peak resident while the silo idles or runs another job.
            Thread.InvokeAsync(() =>
            {
                var gradientBytes = (long)Worker.ParameterCount * sizeof(float);
                Worker.Dispose();
                RAE.Models.Runtime.NativeMemoryTuning.ReturnReleasedMemory(gradientBytes);
            });
            Thread.Dispose();
        }
    }
}
