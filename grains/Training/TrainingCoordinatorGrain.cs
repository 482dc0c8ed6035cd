using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;
using RAE.Grains.Jobs;
using RAE.Grains.Storage;
using RAE.Grains.Workers;

namespace RAE.Grains.Training;

[GenerateSerializer]
public sealed class TrainingJobState
{
    [Id(0)] public TrainingJobSpec? Spec { get; set; }
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public long Step { get; set; }
    [Id(3)] public List<RankSlot> Ranks { get; set; } = [];
    [Id(4)] public int Generation { get; set; }
    [Id(5)] public long? LastCheckpointStep { get; set; }
    [Id(6)] public string? FailureReason { get; set; }
    /// <summary>Every step's metrics, as jobs kept them before the history moved to blob segments; read, never added to.</summary>
    [Id(7)] public List<StepMetrics> LegacyMetrics { get; set; } = [];
    [Id(8)] public DateTimeOffset CreatedAt { get; set; }
    [Id(9)] public DateTimeOffset UpdatedAt { get; set; }
    [Id(10)] public int Recoveries { get; set; }
    [Id(11)] public long? RestoredFromStep { get; set; }
    /// <summary>Failed attempts in a row: steps that failed and runs lost with their silo, forgiven once the job commits a checkpoint past <see cref="LastFailedStep"/>.</summary>
    [Id(12)] public int FailedAttempts { get; set; }
    [Id(13)] public long LastFailedStep { get; set; } = -1;
    [Id(14)] public string? LastError { get; set; }
    [Id(15)] public bool CancelRequested { get; set; }
    /// <summary>The group generation of the last run counted as lost: a run lost again before it formed a group is not counted twice.</summary>
    [Id(16)] public int LastLostGeneration { get; set; }
    /// <summary>Online evaluations, one entry per evaluation step (see the OnlineEvaluation part).</summary>
    [Id(17)] public List<OnlineEvaluationRecord> Evaluations { get; set; } = [];
    /// <summary>The bounded part of the metrics (the history is in blob segments).</summary>
    [Id(40)] public TrainingMetricsSummary MetricsSummary { get; set; } = new();
    /// <summary>The step the current group generation resumed from: its segments supersede older ones past it.</summary>
    [Id(41)] public long MetricsBaseStep { get; set; }
}

/// <summary>
/// Drives one training job. Reentrant so that status queries answer while the step loop awaits its ranks. The loop runs
/// on the grain's scheduler; on any failure of a step it aborts the group, re-forms it from the silos that answer and
/// restores the last committed checkpoint, giving up after <see cref="TrainingJobSpec.MaxAttempts"/> failures in a row.
/// The attempt counter and a cancel request are persisted: a run lost with its silo counts as a failed attempt when the
/// job is resumed elsewhere, and a cancelled job stays cancelled.
/// </summary>
[Reentrant]
public sealed partial class TrainingCoordinatorGrain(
    [PersistentState("training", RaeStorage.GrainStateProvider)] IPersistentState<TrainingJobState> job,
    IEnumerable<IRankWorkerFactory> workerFactories,
    SiloTrainingMetrics siloMetrics,
    IBlobStore blobs,
    ILogger<TrainingCoordinatorGrain> logger) : Grain, ITrainingCoordinatorGrain
{
    public const int MaxConsecutiveFailures = TrainingJobSpec.DefaultMaxAttempts;

    /// <summary>How long failures to reach a silo wait for membership to declare it dead before they count as attempts.</summary>
    public static readonly TimeSpan UnreachableSiloGrace = TimeSpan.FromSeconds(90);

    /// <summary>
    /// Step progress goes to the job registry at most this often and without holding up the next step (state changes
    /// and checkpoints are always reported); the metrics stay in memory and are persisted with the job state at
    /// checkpoints (as sealed blob segments, with a bounded summary in the persisted state).
    /// </summary>
    public static readonly TimeSpan ProgressReportInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan AgentTimeout = TimeSpan.FromSeconds(5);

    private JobLoop? _loop;
    private Task<bool>? _lostRunCounted;
    private readonly HashSet<string> _joinedRanks = new(StringComparer.Ordinal);
    private JobRegistryReporter? _reporter;
    private long _lastProgressReport;
    private IReadOnlyList<IRankGrain> _group = [];
    /// <summary>Cancels the step in flight on every rank (a cancel request does not wait for a long step to finish).</summary>
    private CancellationTokenSource? _stepCancellation;
    /// <summary>Set when this activation is deactivated: the loop stops where it is without ending the job, for the next activation to continue.</summary>
    private bool _deactivating;

    private string JobId => this.GetPrimaryKeyString();
    private TrainingJobState State => job.State;
    private JobLoop Loop => _loop ??= new JobLoop(RunLoopAsync);
    private JobRegistryReporter Reporter => _reporter ??= new JobRegistryReporter(GrainFactory, logger);

    public async Task Start(TrainingJobSpec spec)
    {
        if (State.Spec is not null)
            throw new RaeJobException($"Training job '{JobId}' was already started; submit a new job instead.");
        // Checkpoint names derive from the job id: refuse one that cannot name its own folder before anything is written.
        JobBlobNames.RequireJobId(JobId);
        TrainingSpecValidator.Validate(spec, workerFactories.Select(f => f.Workload));
        var now = DateTimeOffset.UtcNow;
        job.State = new TrainingJobState { Spec = spec, State = JobState.Pending, CreatedAt = now, UpdatedAt = now };
        await job.WriteStateAsync();
        _lostRunCounted = Task.FromResult(true);
        EnsureLoop();
    }

    public async Task Resume()
    {
        var spec = RequireSpec();
        if (Loop.IsRunning) return;
        if (!IsUnfinished)
        {
            // The registry asks only about jobs it believes unfinished: a report of the end it missed sets it right.
            await ReportAsync();
            return;
        }
        if (State.CancelRequested)
        {
            await EndAsync(JobState.Cancelled);
            return;
        }
        // A fresh activation did not start the run: the one that did was lost (its silo crashed or stopped) mid-run.
        // Concurrent resumes (every silo asks) share one count.
        _lostRunCounted ??= CountLostRunAsync(spec);
        if (!await _lostRunCounted) return;
        EnsureLoop();
    }

    public Task<TrainingJobStatus> GetStatus()
    {
        var spec = RequireSpec();
        return Task.FromResult(new TrainingJobStatus
        {
            JobId = JobId,
            State = State.State,
            Spec = spec,
            Step = State.Step,
            Ranks = State.Ranks.ToList(),
            GroupGeneration = State.Generation,
            LastCheckpointStep = State.LastCheckpointStep,
            FailureReason = State.FailureReason,
            LastMetrics = LastMetrics,
            FailedAttempts = State.FailedAttempts,
            LastError = State.LastError,
            CancelRequested = State.CancelRequested,
            CreatedAt = State.CreatedAt,
            UpdatedAt = State.UpdatedAt,
            Recoveries = State.Recoveries,
            RestoredFromStep = State.RestoredFromStep,
            QueuePosition = _queuePosition,
            Evaluations = State.Evaluations.ToList(),
        });
    }

    public async Task<IReadOnlyList<StepMetrics>> GetMetrics(long fromStep)
    {
        RequireSpec();
        return await ReadMetricsAsync(fromStep);
    }

    public async Task Cancel()
    {
        RequireSpec();
        if (!IsUnfinished) return;
        // Persisted before anything else: a silo lost before the run notices the request must not revive the job.
        State.CancelRequested = true;
        await job.WriteStateAsync();
        Loop.RequestCancel();
        _stepCancellation?.Cancel();
        if (!Loop.IsRunning) await EndAsync(JobState.Cancelled);
    }

    private bool IsUnfinished => State.State is JobState.Pending or JobState.Running or JobState.Recovering;

    private bool Cancelling => Loop.CancelRequested || State.CancelRequested;

    private TrainingJobSpec RequireSpec() =>
        State.Spec ?? throw new RaeJobException($"Training job '{JobId}' is unknown; no job with this id was submitted.");

    private void EnsureLoop()
    {
        Loop.EnsureRunning(clearCancel: false);
    }

    private async Task RunLoopAsync()
    {
        var spec = RequireSpec();
        // Failures count as consecutive until the job commits a checkpoint past the step where the last one struck: a
        // checkpoint that keeps failing to save must not be forgiven by the steps redone after each recovery.
        long? unreachableSince = null;
        JobState final;
        try
        {
            // A job is done when its last step is checkpointed: if that checkpoint fails, it restores and redoes the steps.
            while (!Cancelling && !_deactivating && (State.Step < spec.Steps || State.LastCheckpointStep != spec.Steps))
            {
                try
                {
                    if (_group.Count == 0)
                    {
                        await FormGroupAsync(spec, await AcquireSlotsAsync(spec));
                        // A run lost during an evaluation continues it (the checkpoint of its step was committed first).
                        await EvaluateOnlineIfDueAsync(spec);
                    }
                    if (State.Step >= spec.Steps)
                    {
                        // The ranks hold the last step (restored or not yet saved): what is missing is its checkpoint.
                        if (State.LastCheckpointStep != State.Step) await CheckpointAsync(LastMetrics?.Loss ?? double.NaN);
                        continue;
                    }
                    if (State.State != JobState.Running)
                    {
                        State.State = JobState.Running;
                        await PersistAndReportAsync();
                    }
                    DelayDeactivation(TimeSpan.FromMinutes(10));
                    foreach (var ranStep in await RunWindowAsync(spec, State.Step + 1))
                    {
                        var metrics = ranStep.ToMetrics(State.LastCheckpointStep);
                        State.Step = metrics.Step;
                        RecordMetrics(metrics);
                        RecordWorkerEvaluations(spec, metrics);
                        Publish(metrics);
                        // A window ends at the first step due for a checkpoint, so this is always its last step.
                        if (CheckpointDue(spec, State.Step))
                        {
                            await CheckpointAsync(metrics.Loss);
                            await EvaluateOnlineIfDueAsync(spec);
                            await GrowAtCheckpointAsync(spec);
                        }
                        else if (MetricsSegmentDue) await SealMetricsAsync();
                        else ReportProgressNowAndThen();
                    }
                    if (State.Step > State.LastFailedStep) unreachableSince = null;
                }
                catch (Exception error) when (error is NonFiniteStepException || OwnershipLost(error))
                {
                    // Redoing the step from the last checkpoint would meet the same NaN: the job fails at once. A run
                    // whose activation goes (or whose state another activation wrote) stops without counting anything.
                    throw;
                }
                catch (Exception) when (Cancelling || _deactivating)
                {
                    // A step that fails while the job is cancelled ends the run; the job is cancelled, not failed.
                }
                catch (Exception error)
                {
                    // A silo that died still counts as active until membership declares it dead, and a group formed in
                    // between fails on it: those failures wait for membership instead of using up the attempts.
                    var unreachable = error is OrleansMessageRejectionException or SiloUnavailableException;
                    if (unreachable) unreachableSince ??= Stopwatch.GetTimestamp();
                    var waitingForMembership = unreachable && Stopwatch.GetElapsedTime(unreachableSince!.Value) < UnreachableSiloGrace;
                    await AbandonGroupAsync(error.Message);
                    if (!waitingForMembership && !await CountFailedAttemptAsync(FailureReasonOf(error))) throw;
                    LogStepFailed(error, JobId, State.Step + 1, State.FailedAttempts);
                    State.State = JobState.Recovering;
                    await PersistAndReportAsync();
                    await Task.Delay(waitingForMembership ? TimeSpan.FromSeconds(1) : TimeSpan.FromMilliseconds(250 * State.FailedAttempts));
                }
            }
            if (_deactivating) return;
            // The last step's evaluation, when a run was lost during it after its checkpoint was committed.
            if (!Cancelling && State.Step == spec.Steps && State.LastCheckpointStep == spec.Steps) await EvaluateOnlineIfDueAsync(spec);
            if (_deactivating) return;
            final = Cancelling && (State.Step < spec.Steps || State.LastCheckpointStep != spec.Steps) ? JobState.Cancelled : JobState.Completed;
        }
        catch (Exception error) when (OwnershipLost(error))
        {
            StopWithoutEnding(error);
            return;
        }
        catch (Exception error)
        {
            final = JobState.Failed;
            State.FailureReason = error is NonFiniteStepException ? error.Message : GaveUp(spec, FailureReasonOf(error));
            LogJobFailed(error, JobId);
        }
        await EndAsync(final);
    }

    /// <summary>Forms a group on the devices the scheduler granted; <paramref name="growing"/>: a planned re-formation
    /// onto more devices (not counted as a recovery).</summary>
    private async Task FormGroupAsync(TrainingJobSpec spec, IReadOnlyList<RankSlot> slots, bool growing = false)
    {
        var chosen = slots.ToList();
        var worldSize = chosen.Count;
        // Every attempt gets a fresh generation (persisted first), so a half-formed group is never reused.
        var generation = ++State.Generation;
        await job.WriteStateAsync();
        var groupKey = $"{JobId}/g{generation}";
        await GrainFactory.GetGrain<ICollectiveGroupGrain>(groupKey).Configure(worldSize, spec.CollectiveTimeout);
        var ranks = chosen.Select(slot => GrainFactory.GetGrain<IRankGrain>(slot.RankGrainKey)).ToList();
        _joinedRanks.UnionWith(chosen.Select(slot => slot.RankGrainKey));
        await Task.WhenAll(ranks.Select((rank, index) => JoinWithinCollectiveTimeoutAsync(rank, new RankAssignment(JobId, generation, index, worldSize, groupKey, spec))));

        var latest = await RestoreNewestIntactAsync(ranks);
        if (latest is not null)
        {
            State.Step = latest.Step;
            State.LastCheckpointStep = latest.Step;
            State.RestoredFromStep = latest.Step;
        }
        else
        {
            // No checkpoint yet: start from step 0 with rank 0's freshly seeded parameters on every rank.
            await Task.WhenAll(ranks.Select(rank => rank.SynchronizeParameters(JobId)));
            State.Step = 0;
        }
        await TruncateMetricsAsync(State.Step);
        State.Evaluations.RemoveAll(e => e.Step > State.Step);

        var previous = State.Ranks.Where(old => chosen.All(slot => slot.RankGrainKey != old.RankGrainKey)).ToList();
        if (State.Ranks.Count > 0 && !growing) State.Recoveries++;
        State.Ranks = chosen;
        _group = ranks;
        await PersistAndReportAsync();
        foreach (var stale in previous) _ = LeaveQuietlyAsync(GrainFactory.GetGrain<IRankGrain>(stale.RankGrainKey));
        LogGroupFormed(JobId, generation, worldSize, State.Step);
    }

    /// <summary>
    /// Loads the newest committed checkpoint on every rank; one that fails its checksum (corrupt or replaced) is skipped
    /// for the one before it. Null when none was committed; <see cref="RaeJobException"/> when every one is corrupt.
    /// </summary>
    private async Task<CheckpointInfo?> RestoreNewestIntactAsync(IReadOnlyList<IRankGrain> ranks)
    {
        var committed = await GrainFactory.GetGrain<ICheckpointStoreGrain>(JobId).List();
        var problems = new List<string>();
        foreach (var checkpoint in committed.OrderByDescending(c => c.Step))
        {
            try
            {
                await Task.WhenAll(ranks.Select(rank => rank.LoadCheckpoint(JobId, checkpoint)));
                return checkpoint;
            }
            catch (InvalidDataException corrupt)
            {
                LogCheckpointSkipped(corrupt, JobId, checkpoint.Step);
                problems.Add(corrupt.Message);
            }
        }
        return problems.Count == 0 ? null
            : throw new RaeJobException($"Job '{JobId}' has no intact committed checkpoint to restore: {string.Join(" ", problems)}");
    }

    /// <summary>Waits for every rank; the first failure aborts the group so the other ranks stop waiting in a collective.</summary>
    private async Task<T[]> WhenAllOrAbortAsync<T>(IReadOnlyList<IRankGrain> members, List<Task<T>> calls)
    {
        var pending = calls.ToList();
        while (pending.Count > 0)
        {
            var finished = await Task.WhenAny(pending);
            pending.Remove(finished);
            if (finished.IsFaulted || finished.IsCanceled)
            {
                var reason = finished.Exception?.InnerException?.Message ?? "a rank's step was cancelled";
                await AbandonGroupAsync(reason);
                // The other ranks leave their collective once the group is aborted; a rank whose silo is gone may
                // never answer, so it gets the collective timeout and no more.
                await Task.WhenAny(Task.WhenAll(pending), Task.Delay(RequireSpec().CollectiveTimeout));
                EvictHungRanks(members, calls);
                await finished;
            }
        }
        return calls.Select(c => c.Result).ToArray();
    }

    private async Task CheckpointAsync(double loss)
    {
        var spec = RequireSpec();
        // Seal the metrics up to this step before the commit makes it the step a coordinator restores: one lost in
        // between would otherwise resume after steps whose metrics it never stored (a gap in the job's history).
        await SealMetricsAsync();
        var info = await _group[0].SaveCheckpoint(JobId, State.Step, loss);
        await job.WriteStateAsync();
        await GrainFactory.GetGrain<ICheckpointStoreGrain>(JobId).Commit(info, spec.Retention);
        State.LastCheckpointStep = State.Step;
        // Only progress that survives a crash forgives the failures before it.
        if (State.Step > State.LastFailedStep) (State.FailedAttempts, State.LastError) = (0, null);
        await PersistAndReportAsync();
    }

    private async Task AbandonGroupAsync(string reason)
    {
        if (_group.Count == 0) return;
        _group = [];
        try
        {
            await GrainFactory.GetGrain<ICollectiveGroupGrain>($"{JobId}/g{State.Generation}").Abort(reason).WaitAsync(AgentTimeout);
        }
        catch (Exception error)
        {
            LogSiloSkipped(error, "collective group");
        }
    }

    /// <summary>Every rank of the last group, and every rank this activation asked to join (a group that failed to form
    /// too), drops its replica and worker thread.</summary>
    private async Task ReleaseDevicesAsync()
    {
        var keys = State.Ranks.Select(slot => slot.RankGrainKey).Concat(_joinedRanks).Distinct(StringComparer.Ordinal).ToList();
        _group = [];
        _joinedRanks.Clear();
        await Task.WhenAll(keys.Select(key => LeaveQuietlyAsync(GrainFactory.GetGrain<IRankGrain>(key))));
        await ReleaseScheduledDevicesAsync();
    }

    private async Task LeaveQuietlyAsync(IRankGrain rank)
    {
        try
        {
            await rank.Leave(JobId).WaitAsync(AgentTimeout);
        }
        catch (Exception error)
        {
            LogSiloSkipped(error, rank.GetPrimaryKeyString());
        }
    }

    private void Publish(StepMetrics metrics)
    {
        siloMetrics.Record(JobId, metrics);
        TrainingTelemetry.Loss.Record(metrics.Loss);
        TrainingTelemetry.StepSeconds.Record(metrics.StepSeconds);
        TrainingTelemetry.SamplesPerSecond.Record(metrics.SamplesPerSecondPerRank.Sum());
        TrainingTelemetry.Steps.Add(1);
    }

    /// <summary>Reports progress without awaiting it, at most once per <see cref="ProgressReportInterval"/> and one report at a time.</summary>
    private void ReportProgressNowAndThen()
    {
        if (Reporter.Busy || Stopwatch.GetElapsedTime(_lastProgressReport) < ProgressReportInterval) return;
        _lastProgressReport = Stopwatch.GetTimestamp();
        Reporter.ReportInBackground(Summary());
    }

    private async Task PersistAndReportAsync()
    {
        State.UpdatedAt = DateTimeOffset.UtcNow;
        await job.WriteStateAsync();
        await ReportAsync();
    }

    private Task ReportAsync() => Reporter.ReportAsync(Summary());

    private JobSummary Summary() =>
        new(JobId, JobKind.Training, State.State, State.Step, RequireSpec().Steps, State.CreatedAt, DateTimeOffset.UtcNow, State.FailureReason);
}
