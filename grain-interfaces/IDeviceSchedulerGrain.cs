namespace RAE.GrainInterfaces;

/// <summary>
/// What a training job asks the scheduler for: one of <paramref name="WorldSizes"/> (ascending; the first is the least it
/// runs with), never on an <paramref name="Excluded"/> device (a rank evicted as hung). A request that cannot be met
/// joins the FIFO queue when <paramref name="WaitInQueue"/>, else it is simply refused (a job that asks to grow).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record RankRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] IReadOnlyList<int> WorldSizes,
    [property: Id(2)] IReadOnlyList<string> Excluded,
    [property: Id(3)] bool WaitInQueue = true);

/// <summary>The devices granted (the job's lease, in rank order), or none and the job's place in the queue (1 = next).</summary>
[GenerateSerializer, Immutable]
public sealed record RankGrant(
    [property: Id(0)] IReadOnlyList<RankSlot> Slots,
    [property: Id(1)] int? QueuePosition,
    [property: Id(2)] int FreeDevices);

/// <summary>A job waiting for devices: the least and most ranks it takes, and since when it waits.</summary>
[GenerateSerializer, Immutable]
public sealed record QueuedJob(
    [property: Id(0)] string JobId,
    [property: Id(1)] int MinRanks,
    [property: Id(2)] int MaxRanks,
    [property: Id(3)] DateTimeOffset Since);

/// <summary>One device leased to one job.</summary>
[GenerateSerializer, Immutable]
public sealed record DeviceLease([property: Id(0)] RankSlot Slot, [property: Id(1)] string JobId);

/// <summary>The scheduler's view: leased devices and the queue in order.</summary>
[GenerateSerializer, Immutable]
public sealed record SchedulerSnapshot(
    [property: Id(0)] IReadOnlyList<DeviceLease> Leases,
    [property: Id(1)] IReadOnlyList<QueuedJob> Queue);

/// <summary>
/// The cluster's device scheduler (one instance, key <see cref="DefaultKey"/>): a device runs one job's rank at a time.
/// Its state is bounded by the devices and the waiting jobs; nothing is kept for finished jobs.
/// </summary>
public interface IDeviceSchedulerGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    /// <summary>
    /// Leases devices to the job: those it holds that are still active, then free ones when no job waits ahead of it,
    /// the largest allowed world size of them. A job that waits asks again (its place is kept while it keeps asking).
    /// </summary>
    Task<RankGrant> Request(RankRequest request);

    /// <summary>The job's devices become free and it leaves the queue (job end, cancel, failure).</summary>
    Task Release(string jobId);

    Task<SchedulerSnapshot> Snapshot();
}
