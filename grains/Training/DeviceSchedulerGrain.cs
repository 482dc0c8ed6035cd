using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;
using RAE.Grains.Placement;
using RAE.Grains.Storage;

namespace RAE.Grains.Training;

[GenerateSerializer]
public sealed class DeviceSchedulerState
{
    /// <summary>Leased devices by rank grain key: at most one entry per device of the cluster.</summary>
    [Id(0)] public Dictionary<string, DeviceLease> Leases { get; set; } = new(StringComparer.Ordinal);
    /// <summary>Jobs waiting for devices, first come first served: at most one entry per waiting job.</summary>
    [Id(1)] public List<QueuedJob> Queue { get; set; } = [];
}

/// <summary>
/// Grants devices to training jobs so that a device runs one job's rank at a time. A job that cannot get its least
/// world size waits in a FIFO queue and asks again; a job ahead in the queue gets free devices first, and a running job
/// takes more devices (grows, or re-forms onto them) only while nobody waits. Leases on devices of silos that are gone
/// and queue entries of jobs that stopped asking are dropped, so the state never outgrows the cluster and its waiting jobs.
/// </summary>
public sealed class DeviceSchedulerGrain(
    [PersistentState("scheduler", RaeStorage.GrainStateProvider)] IPersistentState<DeviceSchedulerState> scheduler,
    ILogger<DeviceSchedulerGrain> logger) : Grain, IDeviceSchedulerGrain
{
    /// <summary>A waiting job asks about every half second; one that has not asked for this long has given up its place.</summary>
    public static readonly TimeSpan QueuePlaceTimeout = TimeSpan.FromSeconds(30);

    /// <summary>When each waiting job last asked (in memory: a fresh activation gives every waiting job a fresh timeout).</summary>
    private readonly Dictionary<string, DateTimeOffset> _lastAsked = new(StringComparer.Ordinal);

    private DeviceSchedulerState State => scheduler.State;

    public async Task<RankGrant> Request(RankRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sizes = request.WorldSizes.Where(n => n > 0).Order().ToList();
        if (sizes.Count == 0) throw new RaeJobException($"Job '{request.JobId}' asked for no world size it can run with.");
        var now = DateTimeOffset.UtcNow;
        var active = await ActiveSlotsAsync();
        var changed = ForgetGoneDevices(active) | ForgetJobsThatStoppedAsking(now);
        var excluded = request.Excluded.ToHashSet(StringComparer.Ordinal);
        if (!HasEnoughFree(request.JobId, active, excluded, sizes[0])) changed |= await ForgetEndedHoldersAsync(request.JobId);
        var kept = active.Where(slot => LeasedTo(slot) == request.JobId && !excluded.Contains(slot.RankGrainKey)).ToList();
        var free = active.Where(slot => LeasedTo(slot) is null && !excluded.Contains(slot.RankGrainKey)).ToList();
        var place = State.Queue.FindIndex(entry => entry.JobId == request.JobId);
        // Free devices go to the head of the queue first; a job not in the queue only gets them while nobody waits.
        var mayTakeFree = place == 0 || State.Queue.Count == 0;
        var candidates = mayTakeFree ? kept.Concat(free).ToList() : kept;
        var worldSize = sizes.LastOrDefault(n => n <= candidates.Count);
        if (worldSize == 0)
        {
            if (request.WaitInQueue)
            {
                _lastAsked[request.JobId] = now;
                if (place < 0)
                {
                    State.Queue.Add(new QueuedJob(request.JobId, sizes[0], sizes[^1], now));
                    place = State.Queue.Count - 1;
                    changed = true;
                    logger.LogInformation("Job {JobId} waits for {Ranks} rank(s): {Free} device(s) free, place {Place} in the queue",
                        request.JobId, sizes[0], free.Count, place + 1);
                }
            }
            if (changed) await scheduler.WriteStateAsync();
            return new RankGrant([], request.WaitInQueue ? place + 1 : null, free.Count);
        }

        var chosen = candidates.Take(worldSize).ToList();
        var chosenKeys = chosen.Select(slot => slot.RankGrainKey).ToHashSet(StringComparer.Ordinal);
        // The job's devices it does not use any more are freed; an excluded (evicted) one stays leased to the job until
        // it ends, so no other job joins a device whose worker still hangs.
        foreach (var key in State.Leases.Where(pair => pair.Value.JobId == request.JobId && !chosenKeys.Contains(pair.Key) && !excluded.Contains(pair.Key))
                     .Select(pair => pair.Key).ToList())
        {
            State.Leases.Remove(key);
            changed = true;
        }
        foreach (var slot in chosen.Where(slot => LeasedTo(slot) != request.JobId))
        {
            State.Leases[slot.RankGrainKey] = new DeviceLease(slot, request.JobId);
            changed = true;
        }
        if (place >= 0)
        {
            State.Queue.RemoveAt(place);
            changed = true;
        }
        _lastAsked.Remove(request.JobId);
        // A re-formed group on the devices it already holds changes nothing: no write (storage may be what failed).
        if (changed) await scheduler.WriteStateAsync();
        return new RankGrant(chosen, null, free.Count - chosen.Count(slot => free.Contains(slot)));
    }

    public async Task Release(string jobId)
    {
        var removed = State.Leases.Where(pair => pair.Value.JobId == jobId).Select(pair => pair.Key).ToList();
        foreach (var key in removed) State.Leases.Remove(key);
        var dequeued = State.Queue.RemoveAll(entry => entry.JobId == jobId);
        _lastAsked.Remove(jobId);
        if (removed.Count > 0 || dequeued > 0) await scheduler.WriteStateAsync();
    }

    public Task<SchedulerSnapshot> Snapshot() =>
        Task.FromResult(new SchedulerSnapshot(State.Leases.Values.OrderBy(lease => lease.Slot.RankGrainKey, StringComparer.Ordinal).ToList(), State.Queue.ToList()));

    private bool HasEnoughFree(string jobId, List<RankSlot> active, HashSet<string> excluded, int least) =>
        active.Count(slot => (LeasedTo(slot) is null || LeasedTo(slot) == jobId) && !excluded.Contains(slot.RankGrainKey)) >= least;

    /// <summary>
    /// Before a job is made to wait, the holders of leases are asked whether they still run: a job that ended without
    /// giving its devices back (its release was lost) must not keep them from the queue for ever.
    /// </summary>
    private async Task<bool> ForgetEndedHoldersAsync(string asking)
    {
        var holders = State.Leases.Values.Select(lease => lease.JobId).Where(job => job != asking).Distinct(StringComparer.Ordinal).ToList();
        var ended = new List<string>();
        foreach (var holder in holders)
        {
            try
            {
                var status = await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(holder).GetStatus().WaitAsync(SiloAgents.AnswerTimeout);
                if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) ended.Add(holder);
            }
            catch (RaeJobException)
            {
                ended.Add(holder); // no such job
            }
            catch (Exception error) when (error is TimeoutException or OrleansException)
            {
                logger.LogDebug(error, "Job {JobId} did not say whether it still runs; its devices stay leased", holder);
            }
        }
        foreach (var job in ended)
        {
            foreach (var key in State.Leases.Where(pair => pair.Value.JobId == job).Select(pair => pair.Key).ToList()) State.Leases.Remove(key);
            logger.LogWarning("Job {JobId} ended without giving its devices back; they are free again", job);
        }
        return ended.Count > 0;
    }

    private string? LeasedTo(RankSlot slot) => State.Leases.TryGetValue(slot.RankGrainKey, out var lease) ? lease.JobId : null;

    /// <summary>Every device of every active silo that answers, spread over silos first (device i of each silo before device i+1).</summary>
    private async Task<List<RankSlot>> ActiveSlotsAsync()
    {
        var infos = await SiloAgents.AskEveryActiveSiloAsync(GrainFactory, agent => agent.GetComputeInfo(),
            (error, silo) => logger.LogDebug(error, "Silo {Silo} did not say which devices it has", silo));
        return SiloAgents.SpreadOverSilos(infos)
            .Select(slot => new RankSlot(slot.SiloAddress, slot.Device, SiloBoundKey.Rank(slot.Silo, slot.Device)))
            .ToList();
    }

    private bool ForgetGoneDevices(List<RankSlot> active)
    {
        var activeKeys = active.Select(slot => slot.RankGrainKey).ToHashSet(StringComparer.Ordinal);
        var gone = State.Leases.Keys.Where(key => !activeKeys.Contains(key)).ToList();
        foreach (var key in gone) State.Leases.Remove(key);
        return gone.Count > 0;
    }

    private bool ForgetJobsThatStoppedAsking(DateTimeOffset now)
    {
        foreach (var entry in State.Queue) _lastAsked.TryAdd(entry.JobId, now);
        var stale = State.Queue.Where(entry => now - _lastAsked[entry.JobId] > QueuePlaceTimeout).ToList();
        foreach (var entry in stale)
        {
            State.Queue.Remove(entry);
            _lastAsked.Remove(entry.JobId);
            logger.LogWarning("Job {JobId} stopped asking for devices; it left the queue", entry.JobId);
        }
        return stale.Count > 0;
    }
}
