namespace RAE.GrainInterfaces;

/// <summary>
/// One job's entry in the catalog (key = job id): its latest summary. A change of state is persisted (a small record of
/// this job alone); progress alone is kept in memory. The first record lists the job in the index and, while it is
/// unfinished, in its active-jobs bucket.
/// </summary>
[Alias("rae.IJobEntryGrain")]
public interface IJobEntryGrain : IGrainWithStringKey
{
    /// <summary>The job's latest summary; null when no summary was ever recorded under this id.</summary>
    [Alias("Get")]
    Task<JobSummary?> Get();

    /// <summary>Records the job's summary (its first creation time is kept); returns the summary as stored.</summary>
    [Alias("Record")]
    Task<JobSummary> Record(JobSummary summary);

    /// <summary>
    /// Records a summary carried over from the registry's former single state unless this entry already holds one (which
    /// is newer); either way the job ends up indexed and, when unfinished, in its active-jobs bucket.
    /// </summary>
    [Alias("Import")]
    Task Import(JobSummary summary);
}

/// <summary>
/// The head of the job index (key <see cref="DefaultKey"/>): which index partition takes new jobs. Partitions are
/// numbered from 0 and each holds at most <see cref="IJobIndexPartitionGrain.Capacity"/> ids, so every write touches one
/// bounded partition; the head itself holds one number.
/// </summary>
[Alias("rae.IJobIndexGrain")]
public interface IJobIndexGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    /// <summary>Lists the job in the open partition (opening the next one when it is full); returns the partition's number.</summary>
    [Alias("Append")]
    Task<int> Append(JobIndexEntry entry);

    /// <summary>How many partitions exist (numbers 0 to count - 1).</summary>
    [Alias("PartitionCount")]
    Task<int> PartitionCount();
}

/// <summary>One page of the job index (key = partition number): the ids it lists, in the order they were appended.</summary>
[Alias("rae.IJobIndexPartitionGrain")]
public interface IJobIndexPartitionGrain : IGrainWithIntegerKey
{
    const int Capacity = 128;

    /// <summary>Adds the entry (an id already listed here is not added twice); false, and nothing written, when the partition is full.</summary>
    [Alias("TryAppend")]
    Task<bool> TryAppend(JobIndexEntry entry);

    [Alias("GetEntries")]
    Task<IReadOnlyList<JobIndexEntry>> GetEntries();
}

/// <summary>
/// One bucket of the unfinished jobs (key = bucket number, a job's bucket is a hash of its id): it holds only jobs that
/// are pending, running or recovering, so its size follows the cluster's load, not its history.
/// </summary>
[Alias("rae.IActiveJobsGrain")]
public interface IActiveJobsGrain : IGrainWithIntegerKey
{
    [Alias("Add")]
    Task Add(ActiveJob job);

    [Alias("Remove")]
    Task Remove(string jobId);

    [Alias("List")]
    Task<IReadOnlyList<ActiveJob>> List();
}

[GenerateSerializer, Immutable, Alias("rae.JobIndexEntry")]
public sealed record JobIndexEntry(
    [property: Id(0)] string JobId,
    [property: Id(1)] DateTimeOffset CreatedAt);

[GenerateSerializer, Immutable, Alias("rae.ActiveJob")]
public sealed record ActiveJob(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobKind Kind);
