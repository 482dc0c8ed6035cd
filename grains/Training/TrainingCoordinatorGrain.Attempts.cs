using Orleans.Storage;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Training;

/// <summary>The coordinator's persisted attempt counting, how a job ends, and how a run stops without ending it.</summary>
public sealed partial class TrainingCoordinatorGrain
{
    /// <summary>Set when the activation is deactivated (its silo stops gracefully, or it is asked to go): the run stops at
    /// the next point it can, without counting, ending or releasing anything; the next activation resumes the job.</summary>
    private bool _deactivating;

    /// <summary>
    /// The step loop is no grain call: without this it would run on after the activation is gone, beside the activation
    /// that resumes the job elsewhere (two loops driving the same ranks, and the old one's end releasing the new one's
    /// devices). The step in flight is cancelled; a checkpoint being written finishes first.
    /// </summary>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating = true;
        if (_loop is not { IsRunning: true } loop) return;
        _stepCancellation?.Cancel();
        try
        {
            await loop.Completion.WaitAsync(cancellationToken);
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // Out of time (the run stops at its next write: the state's version moved on) or a run that ended in error.
            LogSiloSkipped(error, "run stop at deactivation");
        }
    }

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
