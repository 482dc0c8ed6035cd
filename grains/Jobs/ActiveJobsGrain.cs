using RAE.GrainInterfaces;

namespace RAE.Grains.Jobs;

[GenerateSerializer, Alias("rae.ActiveJobsState")]
public sealed class ActiveJobsState
{
    [Id(0)] public Dictionary<string, JobKind> Jobs { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>One bucket of unfinished jobs; written only when a job joins or leaves it.</summary>
public sealed class ActiveJobsGrain(
    [PersistentState("active-jobs", RaeStorage.GrainStateProvider)] IPersistentState<ActiveJobsState> active) : Grain, IActiveJobsGrain
{
    public async Task Add(ActiveJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var listed = active.State.Jobs.TryGetValue(job.JobId, out var kind);
        if (listed && kind == job.Kind) return;
        active.State.Jobs[job.JobId] = job.Kind;
        try
        {
            await active.WriteStateAsync();
        }
        catch
        {
            if (listed) active.State.Jobs[job.JobId] = kind;
            else active.State.Jobs.Remove(job.JobId);
            throw;
        }
    }

    public async Task Remove(string jobId)
    {
        if (!active.State.Jobs.Remove(jobId, out var kind)) return;
        try
        {
            await active.WriteStateAsync();
        }
        catch
        {
            active.State.Jobs[jobId] = kind;
            throw;
        }
    }

    public Task<IReadOnlyList<ActiveJob>> List() =>
        Task.FromResult<IReadOnlyList<ActiveJob>>(active.State.Jobs.Select(pair => new ActiveJob(pair.Key, pair.Value)).ToList());
}
