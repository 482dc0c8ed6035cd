namespace RAE.GrainInterfaces;

/// <summary>
/// Catalog of one job's committed checkpoints (key: job id). Payloads live in the silo's blob store
/// (<see cref="CheckpointInfo.Location"/> is the blob path); a checkpoint counts only once it is committed here.
/// </summary>
public interface ICheckpointStoreGrain : IGrainWithStringKey
{
    /// <summary>Largest chunk <see cref="ReadPayload"/> hands out, far below Orleans' message size limit.</summary>
    public const int MaxChunkBytes = 16 * 1024 * 1024;

    /// <summary>Commits a checkpoint whose payload is already written, then applies the retention policy.</summary>
    Task Commit(CheckpointInfo checkpoint, CheckpointRetentionPolicy retention);

    Task<IReadOnlyList<CheckpointInfo>> List();

    /// <summary>Keeps the committed checkpoint at <paramref name="step"/> from retention while <paramref name="holder"/>
    /// (a sampling job id) uses it; one pin per holder, a new pin replaces its old one.</summary>
    Task Pin(long step, string holder);

    /// <summary>Drops <paramref name="holder"/>'s pin; the checkpoint goes at a later commit if retention no longer keeps it.</summary>
    Task Unpin(string holder);

    /// <summary>The newest committed checkpoint, or null when none was committed.</summary>
    Task<CheckpointInfo?> Latest();

    /// <summary><see cref="RaeJobException"/> when no checkpoint of that step was committed.</summary>
    Task<CheckpointInfo> Get(long step);

    /// <summary>
    /// The payload of the committed checkpoint at <paramref name="step"/>, front to back, in chunks of at most
    /// <paramref name="chunkBytes"/> (1 .. <see cref="MaxChunkBytes"/>). The stream is verified against the stored and
    /// the catalogued SHA-256 before the last chunk is handed out: a corrupt payload ends in a
    /// <see cref="RaeJobException"/> that says so. Enumerate with a batch size of 1 (WithBatchSize) so each message holds one chunk.
    /// </summary>
    IAsyncEnumerable<byte[]> ReadPayload(long step, int chunkBytes, CancellationToken cancellationToken = default);
}
