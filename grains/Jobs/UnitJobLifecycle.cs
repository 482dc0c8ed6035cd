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
/// The life-cycle steps the unit job grains share around their <see cref="JobLoop"/>: keep the activation alive and
/// continue an unfinished job on activation, stop handing out units on deactivation, reopen a cancelled or failed job
/// on resume, and cancel. The grains keep what differs: planning, dispatch and the units' own state.
/// </summary>
public static class UnitJobLifecycle
{
    private static readonly TimeSpan KeepAlivePeriod = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Registers the keep-alive timer (idle collection would otherwise stop a long job) and says whether the state is an
    /// unfinished job that this activation must continue; such a resumption is counted.
    /// </summary>
    public static bool Activate(Grain grain, IUnitJobState state)
    {
        grain.RegisterGrainTimer(_ => Task.CompletedTask, new GrainTimerCreationOptions(KeepAlivePeriod, KeepAlivePeriod) { KeepAlive = true });
        if (!state.Started || state.State is not (JobState.Pending or JobState.Running)) return false;
        state.Resumptions++;
        return true;
    }

    /// <summary>Asks the loop to stop and waits for it; units still in flight are not recorded, so the next activation redoes them.</summary>
    public static async Task StopForDeactivationAsync(JobLoop? loop, CancellationToken cancellationToken)
    {
        if (loop is null) return;
        loop.RequestCancel();
        try
        {
            await loop.Completion.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Deactivation ran out of time: the state stays running and the next activation continues.
        }
    }

    /// <summary>
    /// Whether a resume request should start the loop: not for a completed job or a running loop. A cancelled or failed
    /// job is made pending again (its failure cleared) and written first.
    /// </summary>
    public static async Task<bool> ReopenAsync(IUnitJobState state, JobLoop loop, Func<Task> writeState)
    {
        if (state.State is JobState.Completed || loop.IsRunning) return false;
        if (state.State is JobState.Cancelled or JobState.Failed)
        {
            state.State = JobState.Pending;
            state.FailureReason = null;
            state.UpdatedAt = DateTimeOffset.UtcNow;
            await writeState();
        }
        return true;
    }

    /// <summary>Stops an unfinished job's loop and, unless the loop ended it meanwhile, finishes it as cancelled.</summary>
    public static async Task CancelAsync(IUnitJobState state, JobLoop loop, Func<JobState, string?, Task> finish)
    {
        if (state.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return;
        loop.RequestCancel();
        await loop.Completion;
        if (state.State is JobState.Pending or JobState.Running) await finish(JobState.Cancelled, null);
    }
}
