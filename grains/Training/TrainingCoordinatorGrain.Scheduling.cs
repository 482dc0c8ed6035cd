using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;

namespace RAE.Grains.Training;

/// <summary>
/// The coordinator's side of device scheduling: it leases its devices from the <see cref="IDeviceSchedulerGrain"/>,
/// waits in the queue while it cannot get its least world size, grows onto free devices at checkpoint boundaries and
/// keeps ranks evicted as hung out of its groups.
/// </summary>
public sealed partial class TrainingCoordinatorGrain
{
    /// <summary>How often a job waiting in the queue asks again.</summary>
    public static readonly TimeSpan QueuePollInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>Rank grain keys of devices whose worker did not answer a step within the collective timeout; never rejoined by this activation.</summary>
    private readonly HashSet<string> _evicted = new(StringComparer.Ordinal);
    private int? _queuePosition;

    private IDeviceSchedulerGrain Scheduler => GrainFactory.GetGrain<IDeviceSchedulerGrain>(IDeviceSchedulerGrain.DefaultKey);

    /// <summary>
    /// The world sizes from <paramref name="least"/> to the spec's ranks that split the global batch evenly (micro-batch =
    /// global / (ranks x accumulation)), so that the loss curve does not depend on how many ranks run it.
    /// </summary>
    public static IReadOnlyList<int> WorldSizes(TrainingJobSpec spec, int least) =>
        Enumerable.Range(least, Math.Max(0, spec.Ranks - least + 1))
            .Where(n => spec.GlobalBatchSize % (n * spec.GradientAccumulation) == 0)
            .ToList();

    /// <summary>
    /// Devices for the next group, waiting in the queue until the scheduler grants them. A job that never ran waits for
    /// its <see cref="TrainingJobSpec.MinimumRanks"/>; one that ran before (a group re-formed after a failure) goes on
    /// with as few as one rank.
    /// </summary>
    private async Task<IReadOnlyList<RankSlot>> AcquireSlotsAsync(TrainingJobSpec spec)
    {
        var least = State.Ranks.Count > 0 ? 1 : spec.MinimumRanks;
        var request = new RankRequest(JobId, WorldSizes(spec, least), _evicted.ToList());
        while (true)
        {
            var grant = await Scheduler.Request(request);
            if (grant.Slots.Count > 0)
            {
                _queuePosition = null;
                return grant.Slots;
            }
            if (_queuePosition != grant.QueuePosition)
            {
                _queuePosition = grant.QueuePosition;
                LogQueued(JobId, least, _queuePosition ?? 0, grant.FreeDevices);
                // The registry learns of a job (one started under its own id too) and its state while it waits.
                await ReportAsync();
            }
            if (Cancelling) throw new OperationCanceledException($"Job '{JobId}' was cancelled while it waited for devices.");
            if (_deactivating) throw new OperationCanceledException($"Job '{JobId}''s coordinator is deactivating; the next activation waits for devices.");
            DelayDeactivation(TimeSpan.FromMinutes(10));
            await Task.Delay(QueuePollInterval);
        }
    }

    /// <summary>
    /// At a checkpoint boundary (the checkpoint just committed), a job with fewer ranks than it asked for takes free
    /// devices when nobody waits in the queue: it re-forms its group with more ranks and restores that checkpoint.
    /// </summary>
    private async Task GrowAtCheckpointAsync(TrainingJobSpec spec)
    {
        if (_group.Count == 0 || _group.Count >= spec.Ranks || State.Step >= spec.Steps || Cancelling) return;
        var larger = WorldSizes(spec, _group.Count + 1);
        if (larger.Count == 0) return;
        var grant = await Scheduler.Request(new RankRequest(JobId, [_group.Count, .. larger], _evicted.ToList(), WaitInQueue: false));
        if (grant.Slots.Count <= _group.Count) return;
        LogGrowing(JobId, _group.Count, grant.Slots.Count, State.Step);
        await AbandonGroupAsync($"job '{JobId}' grows to {grant.Slots.Count} ranks");
        await FormGroupAsync(spec, grant.Slots, growing: true);
    }

    /// <summary>The job's devices go back to the scheduler (and it leaves the queue); a scheduler that cannot be reached is logged.</summary>
    private async Task ReleaseScheduledDevicesAsync()
    {
        _queuePosition = null;
        try
        {
            await Scheduler.Release(JobId);
        }
        catch (Exception error)
        {
            LogSiloSkipped(error, "device scheduler");
        }
    }

    /// <summary>
    /// Joins one rank to the group being formed. A rank grain takes one call at a time, so one whose device worker still
    /// hangs in an earlier step would hold the join for the whole response timeout (30 minutes): a free rank answers the
    /// probe at once, a held one gets the job's collective timeout, is evicted (the next group forms without it) and fails
    /// the attempt with a message that says so. The join itself (building a replica may take long) keeps its own timeout.
    /// </summary>
    private async Task JoinWithinCollectiveTimeoutAsync(IRankGrain rank, RankAssignment assignment)
    {
        var timeout = assignment.Spec.CollectiveTimeout;
        try
        {
            await rank.HeldJobs().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            var key = rank.GetPrimaryKeyString();
            if (_evicted.Add(key)) LogRankEvicted(JobId, key, timeout.TotalSeconds);
            throw new TimeoutException($"Job '{JobId}': rank {key} cannot join group generation {assignment.Generation}: it did not answer within the " +
                $"collective timeout ({timeout.TotalSeconds:0.###} s) because its device worker is still busy (an earlier step may hang); it is evicted and the group re-forms without it.");
        }
        await rank.Join(assignment);
    }

    /// <summary>Ranks whose step call had not answered when the group was abandoned and the collective timeout passed:
    /// their workers hang, so the next group is formed without them.</summary>
    private void EvictHungRanks(IReadOnlyList<IRankGrain> members, IReadOnlyList<Task> calls)
    {
        for (var index = 0; index < calls.Count; index++)
        {
            if (calls[index].IsCompleted) continue;
            var key = members[index].GetPrimaryKeyString();
            if (_evicted.Add(key)) LogRankEvicted(JobId, key, RequireSpec().CollectiveTimeout.TotalSeconds);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} waits for {Ranks} rank(s) at place {Place} in the queue ({Free} device(s) free)")]
    private partial void LogQueued(string jobId, int ranks, int place, int free);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} grows from {From} to {To} rank(s) at its checkpoint of step {Step}")]
    private partial void LogGrowing(string jobId, int from, int to, long step);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: rank {RankKey} did not answer within the collective timeout ({Seconds} s) and is evicted; the group re-forms without it")]
    private partial void LogRankEvicted(string jobId, string rankKey, double seconds);
}
