namespace RAE.GrainInterfaces;

/// <summary>
/// Catalog of one job's committed checkpoints (key: job id). Payloads live in a payload store (files now, blob storage
/// later); a checkpoint counts only once it is committed here.
/// </summary>
public interface ICheckpointStoreGrain : IGrainWithStringKey
{
    /// <summary>Commits a checkpoint whose payload is already written; applies the retention policy.</summary>
    Task Commit(CheckpointInfo checkpoint, int keepLast);

    Task<IReadOnlyList<CheckpointInfo>> List();

    /// <summary>The newest committed checkpoint, or null when none was committed.</summary>
    Task<CheckpointInfo?> Latest();

    /// <summary><see cref="RaeJobException"/> when no checkpoint of that step was committed.</summary>
    Task<CheckpointInfo> Get(long step);
}
