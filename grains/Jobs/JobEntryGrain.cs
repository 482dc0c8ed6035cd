using System.Security.Cryptography;
using System.Text;
using RAE.GrainInterfaces;

namespace RAE.Grains.Jobs;

[GenerateSerializer, Alias("rae.JobEntryState")]
public sealed class JobEntryState
{
    /// <summary>The summary as of the job's last change of state (progress in between is not persisted).</summary>
    [Id(0)] public JobSummary? Summary { get; set; }

    /// <summary>The index partition that lists the job; null until it is listed.</summary>
    [Id(1)] public int? IndexPartition { get; set; }
}

/// <summary>
/// One job's catalog entry. Every write is this job's summary alone. Order of writes: a job becoming unfinished is added
/// to its active-jobs bucket before its entry is written, and removed after, so a crash in between can leave a finished
/// job in a bucket (the registry clears it on its next resume pass) but never an unfinished one outside.
/// </summary>
public sealed class JobEntryGrain(
    [PersistentState("job-entry", RaeStorage.GrainStateProvider)] IPersistentState<JobEntryState> entry) : Grain, IJobEntryGrain
{
    public const int ActiveBuckets = 16;

    private JobSummary? _latest;

    private string JobId => this.GetPrimaryKeyString();

    public Task<JobSummary?> Get() => Task.FromResult(_latest ?? entry.State.Summary);

    public async Task<JobSummary> Record(JobSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        if (!string.Equals(summary.JobId, JobId, StringComparison.Ordinal))
            throw new RaeJobException($"A summary of job '{summary.JobId}' was sent to the catalog entry of job '{JobId}'.");
        var previous = entry.State.Summary;
        var stored = summary with { CreatedAt = previous?.CreatedAt ?? summary.CreatedAt };
        _latest = stored;
        // Progress alone is kept in memory; a change of state is persisted.
        if (previous is null || previous.State != stored.State || entry.State.IndexPartition is null) await PersistAsync(stored);
        return stored;
    }

    public async Task Import(JobSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        var current = entry.State.Summary;
        if (current is not null && entry.State.IndexPartition is not null) return;
        var stored = current ?? summary with { JobId = JobId };
        _latest ??= stored;
        await PersistAsync(stored);
    }

    /// <summary>The active-jobs bucket of a job id: a stable hash, the same on every silo and every run.</summary>
    public static int BucketOf(string jobId) => SHA256.HashData(Encoding.UTF8.GetBytes(jobId))[0] % ActiveBuckets;

    public static bool IsUnfinished(JobState state) => state is JobState.Pending or JobState.Running or JobState.Recovering;

    private async Task PersistAsync(JobSummary stored)
    {
        var bucket = GrainFactory.GetGrain<IActiveJobsGrain>(BucketOf(JobId));
        var unfinished = IsUnfinished(stored.State);
        if (unfinished) await bucket.Add(new ActiveJob(JobId, stored.Kind));
        var partition = entry.State.IndexPartition
            ?? await GrainFactory.GetGrain<IJobIndexGrain>(IJobIndexGrain.DefaultKey).Append(new JobIndexEntry(JobId, stored.CreatedAt));
        var before = (entry.State.Summary, entry.State.IndexPartition);
        (entry.State.Summary, entry.State.IndexPartition) = (stored, partition);
        try
        {
            await entry.WriteStateAsync();
        }
        catch
        {
            // Not written: the next report of this state must try again.
            (entry.State.Summary, entry.State.IndexPartition) = before;
            throw;
        }
        if (!unfinished) await bucket.Remove(JobId);
    }
}
