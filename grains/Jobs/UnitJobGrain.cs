using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;

namespace RAE.Grains.Jobs;

/// <summary>
/// The persisted fields every unit job (encode, sampling, evaluation) has in common. Each state class keeps its own
/// <c>[Id]</c> layout; this interface only names the members, so existing persisted state still loads.
/// </summary>
public interface IUnitJobState
{
    /// <summary>Whether the job was ever started (its spec is stored).</summary>
    bool Started { get; }

    JobState State { get; set; }

    string? FailureReason { get; set; }

    DateTimeOffset UpdatedAt { get; set; }

    int Resumptions { get; set; }
}

/// <summary>
/// The life cycle the unit job grains (encode, sampling, evaluation) share around their <see cref="JobLoop"/>: keep the
/// activation alive and continue an unfinished job on activation, stop handing out units on deactivation, reopen a
/// cancelled or failed job on resume, and cancel, which also cancels the units running on the workers
/// (<see cref="CancellableUnit{T}"/>). The grains keep what differs: planning, dispatch and the units' own state. The
/// persisted state keeps the name and layout the derived grain gives it.
/// </summary>
public abstract class UnitJobGrain<TState>(IPersistentState<TState> job) : Grain
    where TState : class, IUnitJobState, new()
{
    private static readonly TimeSpan KeepAlivePeriod = TimeSpan.FromMinutes(1);

    private JobLoop? _loop;
    private JobRegistryReporter? _reporter;
    /// <summary>Cancelled by the job's cancel; each unit in flight has registered the call that stops it on its worker.</summary>
    private CancellationTokenSource _unitCancellation = new();

    protected string JobId => this.GetPrimaryKeyString();

    protected TState State => job.State;

    /// <summary>The persisted job, for the derived grain to replace its state at start and write it.</summary>
    protected IPersistentState<TState> Job => job;

    protected JobLoop Loop => _loop ??= new JobLoop(RunLoopAsync);

    protected JobRegistryReporter Reporter => _reporter ??= new JobRegistryReporter(GrainFactory, Logger);

    /// <summary>Set once the activation is going away: the loop then stops without finishing the job.</summary>
    protected bool Deactivating { get; private set; }

    protected abstract ILogger Logger { get; }

    /// <summary>One run of the job: plan, hand out the units, finish. <see cref="Loop"/> runs it.</summary>
    protected abstract Task RunLoopAsync();

    /// <summary>Writes the final state (and whatever the job does on ending).</summary>
    protected abstract Task FinishAsync(JobState state, string? reason);

    /// <summary>
    /// Registers the keep-alive timer (idle collection would otherwise stop a long job) and continues an unfinished job;
    /// such a resumption is counted.
    /// </summary>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        this.RegisterGrainTimer(_ => Task.CompletedTask, new GrainTimerCreationOptions(KeepAlivePeriod, KeepAlivePeriod) { KeepAlive = true });
        if (State.Started && State.State is JobState.Pending or JobState.Running)
        {
            State.Resumptions++;
            EnsureLoop();
        }
        return Task.CompletedTask;
    }

    /// <summary>Asks the loop to stop and waits for it; the state stays running, so the next activation continues.</summary>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        Deactivating = true;
        if (_loop is null) return;
        _loop.RequestCancel();
        try
        {
            await _loop.Completion.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Deactivation ran out of time: the state stays running and the next activation continues.
        }
    }

    /// <summary>Starts the loop unless it runs; a fresh run forgets an earlier cancel.</summary>
    protected void EnsureLoop()
    {
        if (Loop.IsRunning) return;
        if (_unitCancellation.IsCancellationRequested)
        {
            _unitCancellation.Dispose();
            _unitCancellation = new CancellationTokenSource();
        }
        Loop.EnsureRunning(clearCancel: true);
    }

    /// <summary>The resume service's call: starts the loop of a job still pending or running by its own state, nothing else.</summary>
    public Task ContinueIfUnfinished()
    {
        if (State.Started && State.State is JobState.Pending or JobState.Running) EnsureLoop();
        return Task.CompletedTask;
    }

    /// <summary>
    /// Resumes the job unless it completed or its loop runs: a cancelled or failed job is made pending again (its failure
    /// cleared) and written first.
    /// </summary>
    protected async Task ResumeJobAsync()
    {
        if (State.State is JobState.Completed) return;
        if (Loop.IsRunning)
        {
            // A live loop needs no resume; one that has just failed or cancelled the job may still be unwinding (its last
            // report), and a resume that returned then would be lost: wait for it to end, then resume.
            if (State.State is not (JobState.Cancelled or JobState.Failed)) return;
            await Loop.Completion;
            if (Loop.IsRunning || State.State is JobState.Completed) return;
        }
        if (State.State is JobState.Cancelled or JobState.Failed)
        {
            State.State = JobState.Pending;
            State.FailureReason = null;
            State.UpdatedAt = DateTimeOffset.UtcNow;
            await job.WriteStateAsync();
        }
        EnsureLoop();
    }

    /// <summary>
    /// Stops an unfinished job: no new units, the running ones cancelled on their workers; once the loop has ended the job
    /// is Cancelled unless the loop ended it meanwhile.
    /// </summary>
    protected async Task CancelJobAsync()
    {
        if (State.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return;
        Loop.RequestCancel();
        _unitCancellation.Cancel();
        await Loop.Completion;
        if (State.State is JobState.Pending or JobState.Running) await FinishAsync(JobState.Cancelled, null);
    }

    /// <summary>
    /// The unit <paramref name="call"/> just sent to <paramref name="worker"/>; while it runs, the job's cancel reaches it
    /// (<see cref="IUnitWorkerGrain.CancelUnits"/>), so it stops at its next check and writes nothing. Deactivation does not
    /// cancel it: units in flight then finish and are recorded. The worker answers for itself: a unit that ended before the
    /// cancel arrived is returned whole (and recorded), never dropped.
    /// </summary>
    protected async Task<T> CancellableUnit<T>(IUnitWorkerGrain worker, Task<T> call)
    {
        using var registration = _unitCancellation.Token.Register(() => _ = CancelOnWorkerAsync(worker));
        return await call;
    }

    private async Task CancelOnWorkerAsync(IUnitWorkerGrain worker)
    {
        try
        {
            await worker.CancelUnits(JobId);
        }
        catch (Exception error)
        {
            // The unit then runs to its end (its worker may be gone with its silo); the job still ends Cancelled.
            Logger.LogWarning(error, "Job {JobId}: could not cancel its unit on worker {Worker}", JobId, worker.GetPrimaryKeyString());
        }
    }

    /// <summary>Whether a unit's failure is only the job's own cancel reaching it (not an attempt to count).</summary>
    protected bool IsCancelledUnit(Exception error) => error is OperationCanceledException && Loop.CancelRequested;
}
