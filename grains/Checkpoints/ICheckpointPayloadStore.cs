using RAE.GrainInterfaces;

namespace RAE.Grains.Checkpoints;

/// <summary>
/// Where checkpoint payloads live: the silo's blob store (<see cref="BlobCheckpointPayloadStore"/>), so every silo of
/// the cluster reads what any silo wrote. Writes are atomic and carry a SHA-256 that is checked on read. A written
/// payload is not a checkpoint until the job's <see cref="ICheckpointStoreGrain"/> commits it.
/// </summary>
public interface ICheckpointPayloadStore
{
    /// <summary>Writes the payload of group <paramref name="generation"/>'s checkpoint and returns a not-yet-committed description of it.</summary>
    Task<CheckpointInfo> WriteAsync(string jobId, long step, byte[] payload, double? loss, int generation = 0, CancellationToken cancellationToken = default);

    /// <summary>Streams the payload (read once, front to back) and returns a not-yet-committed description of it.</summary>
    Task<CheckpointInfo> WriteAsync(string jobId, long step, Stream payload, double? loss, int generation = 0, CancellationToken cancellationToken = default);

    /// <summary>Reads and verifies a payload; <see cref="InvalidDataException"/> when its checksum does not match,
    /// <see cref="FileNotFoundException"/> when it is missing.</summary>
    Task<byte[]> ReadAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default);

    /// <summary>Opens the payload for streaming. The stream throws <see cref="InvalidDataException"/> once the last
    /// byte is read if the bytes do not match the checksum (a stream disposed early is not verified).</summary>
    Task<Stream> OpenReadAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default);

    Task DeleteAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default);
}
