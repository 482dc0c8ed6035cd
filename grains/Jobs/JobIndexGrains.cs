using RAE.GrainInterfaces;

namespace RAE.Grains.Jobs;

[GenerateSerializer, Alias("rae.JobIndexState")]
public sealed class JobIndexState
{
    [Id(0)] public int OpenPartition { get; set; }
}

/// <summary>The index head: one number, written only when a partition fills up and the next one is opened.</summary>
public sealed class JobIndexGrain(
    [PersistentState("job-index", RaeStorage.GrainStateProvider)] IPersistentState<JobIndexState> index) : Grain, IJobIndexGrain
{
    public async Task<int> Append(JobIndexEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        while (true)
        {
            var number = index.State.OpenPartition;
            if (await GrainFactory.GetGrain<IJobIndexPartitionGrain>(number).TryAppend(entry)) return number;
            index.State.OpenPartition = number + 1;
            await index.WriteStateAsync();
        }
    }

    public Task<int> PartitionCount() => Task.FromResult(index.State.OpenPartition + 1);
}

[GenerateSerializer, Alias("rae.JobIndexPartitionState")]
public sealed class JobIndexPartitionState
{
    [Id(0)] public List<JobIndexEntry> Entries { get; set; } = [];
}

/// <summary>One index page: at most <see cref="IJobIndexPartitionGrain.Capacity"/> ids, append-only.</summary>
public sealed class JobIndexPartitionGrain(
    [PersistentState("job-index-partition", RaeStorage.GrainStateProvider)] IPersistentState<JobIndexPartitionState> partition)
    : Grain, IJobIndexPartitionGrain
{
    public async Task<bool> TryAppend(JobIndexEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var entries = partition.State.Entries;
        if (entries.Any(e => string.Equals(e.JobId, entry.JobId, StringComparison.Ordinal))) return true;
        if (entries.Count >= IJobIndexPartitionGrain.Capacity) return false;
        entries.Add(entry);
        try
        {
            await partition.WriteStateAsync();
        }
        catch
        {
            entries.RemoveAt(entries.Count - 1);
            throw;
        }
        return true;
    }

    public Task<IReadOnlyList<JobIndexEntry>> GetEntries() => Task.FromResult<IReadOnlyList<JobIndexEntry>>(partition.State.Entries.ToList());
}
