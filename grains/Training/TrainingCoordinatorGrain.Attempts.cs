using Orleans.Storage;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Training;

/// <summary>The coordinator's persisted attempt counting, a run stopped by the activation's deactivation, and how a job ends.</summary>
public sealed partial class TrainingCoordinatorGrain
{
    /// <summary>This activation must stop without touching the job: it is being deactivated, or another activation wrote
    /// the job's state since this one read it (it was presumed lost with its silo).</summary>
    private bool OwnershipLost(Exception error) =>
        _deactivating || error is InconsistentStateException || error.InnerException is InconsistentStateException;

    private void StopWithoutEnding(Exception error)
    {
        var why = _deactivating ? "its activation is being deactivated" : $"another activation wrote the job's state ({error.Message})";
        LogRunStopped(JobId, State.Step, why);
        if (!_deactivating) DeactivateOnIdle();
    }

    /// <summary>Counts the lost run as a failed attempt; false when that was the last one allowed (the job then ended Failed).</summary>
    private async Task<bool> CountLostRunAsync(TrainingJobSpec spec)
    {
        // An activation can also be lost without a crash (moved while the cluster forms) before it formed a group: only
        // a run that formed a group since the last counted loss counts, and each such run once.
        if (State.Generation <= State.LastLostGeneration) return true;
        State.LastLostGeneration = State.Generation;
        var error = $"the job's run was lost at step {State.Step} (its coordinator's silo crashed or stopped)";
        LogRunLost(JobId, State.Step, State.FailedAttempts + 1, spec.MaxAttempts);
        if (await CountFailedAttemptAsync(error)) return true;
        State.FailureReason = GaveUp(spec, error);
        await EndAsync(JobState.Failed);
        return false;
    }

    /// <summary>
    /// The run stops without ending the job (a step in flight is cancelled, an online evaluation's child jobs go on) and
    /// the next activation continues it, as after a lost silo but without counting a failed attempt.
    /// </summary>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating = true;
        if (!Loop.IsRunning) return;
        _stepCancellation?.Cancel();
        try
        {
            await Loop.Completion.WaitAsync(cancellationToken);
            if (IsUnfinished && !State.CancelRequested)
            {
                State.LastLostGeneration = State.Generation;
                await job.WriteStateAsync();
            }
            LogStoppedForDeactivation(JobId, State.Step, reason.Description);
        }
        catch (OperationCanceledException)
        {
            // Deactivation ran out of time: the next activation counts the run as lost.
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // A run that ended in error: the next activation resumes the job from its state.
            LogSiloSkipped(error, "run stop at deactivation");
        }
    }

    /// <summary>Counts a failed attempt (persisted); false when it was the last one the spec allows.</summary>
    private async Task<bool> CountFailedAttemptAsync(string error)
    {
        State.FailedAttempts++;
        State.LastFailedStep = Math.Max(State.LastFailedStep, State.Step);
        State.LastError = error;
        await job.WriteStateAsync();
        return State.FailedAttempts < RequireSpec().MaxAttempts;
    }

    private static string GaveUp(TrainingJobSpec spec, string lastError) =>
        $"The job gave up after {spec.MaxAttempts} failed attempt(s) in a row; the last: {lastError}";

    /// <summary>Ends the job: every device that holds a replica of it lets it go, then the final state is persisted and reported.</summary>
    private async Task EndAsync(JobState final)
    {
        // The end shows (in status and registry) only once the devices are let go and the metrics are stored.
        await SealMetricsQuietlyAsync();
        await ReleaseDevicesAsync();
        State.State = final;
        await PersistAndReportAsync();
    }

    /// <summary>Says what went wrong in the operator's terms: a storage outage is named as such, with the store's reason.</summary>
    private static string FailureReasonOf(Exception error)
    {
        var storage = error as BlobStoreUnavailableException ?? error.InnerException as BlobStoreUnavailableException;
        return storage is not null
            ? $"Checkpoint storage is unavailable: {storage.Message}"
            : $"{error.GetType().Name}: {error.Message}";
    }
}
