using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;

namespace RAE.Grains.Checkpoints;

[GenerateSerializer]
public sealed class CheckpointCatalogState
{
    [Id(0)] public List<CheckpointInfo> Committed { get; set; } = [];
}

/// <summary>Catalog of one job's committed checkpoints, persisted as grain state; keeps the newest <c>keepLast</c>.</summary>
public sealed class CheckpointStoreGrain(
    [PersistentState("checkpoints", RaeStorage.GrainStateProvider)] IPersistentState<CheckpointCatalogState> catalog,
    ICheckpointPayloadStore payloads,
    ILogger<CheckpointStoreGrain> logger) : Grain, ICheckpointStoreGrain
{
    public async Task Commit(CheckpointInfo checkpoint, int keepLast)
    {
        if (checkpoint.JobId != this.GetPrimaryKeyString())
            throw new RaeJobException($"Checkpoint of job '{checkpoint.JobId}' was sent to the catalog of job '{this.GetPrimaryKeyString()}'.");
        var committed = catalog.State.Committed;
        committed.RemoveAll(c => c.Step == checkpoint.Step);
        committed.Add(checkpoint);
        committed.Sort((a, b) => a.Step.CompareTo(b.Step));
        var retired = keepLast > 0 && committed.Count > keepLast ? committed.Take(committed.Count - keepLast).ToList() : [];
        committed.RemoveRange(0, retired.Count);
        await catalog.WriteStateAsync();
        // Payloads go only after the catalog no longer lists them, so a crash here leaves an orphan, never a dangling entry.
        foreach (var old in retired)
        {
            try
            {
                await payloads.DeleteAsync(old);
            }
            catch (IOException error)
            {
                logger.LogWarning(error, "Could not delete retired checkpoint {Location}", old.Location);
            }
        }
    }

    public Task<IReadOnlyList<CheckpointInfo>> List() => Task.FromResult<IReadOnlyList<CheckpointInfo>>(catalog.State.Committed.ToList());

    public Task<CheckpointInfo?> Latest() => Task.FromResult(catalog.State.Committed.Count == 0 ? null : catalog.State.Committed[^1]);

    public Task<CheckpointInfo> Get(long step) =>
        Task.FromResult(catalog.State.Committed.FirstOrDefault(c => c.Step == step)
            ?? throw new RaeJobException($"Job '{this.GetPrimaryKeyString()}' has no committed checkpoint at step {step}; committed steps: [{string.Join(", ", catalog.State.Committed.Select(c => c.Step))}]."));
}
