using System.Security.Cryptography;
using RAE.GrainInterfaces;

namespace RAE.Grains.Checkpoints;

/// <summary>
/// Where checkpoint payloads live. The file implementation serves the embedded mode and tests; the storage layer's blob
/// store (file system or Azure Blob) plugs in here for cluster mode. Writes are atomic and carry a SHA-256 that is
/// checked on read.
/// </summary>
public interface ICheckpointPayloadStore
{
    /// <summary>Writes the payload and returns a not-yet-committed description of it.</summary>
    Task<CheckpointInfo> WriteAsync(string jobId, long step, byte[] payload, double? loss, CancellationToken cancellationToken = default);

    /// <summary>Reads and verifies a payload; <see cref="InvalidDataException"/> when its checksum does not match.</summary>
    Task<byte[]> ReadAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default);

    Task DeleteAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default);
}

public sealed class FileCheckpointPayloadStore(string root) : ICheckpointPayloadStore
{
    public async Task<CheckpointInfo> WriteAsync(string jobId, long step, byte[] payload, double? loss, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(jobId);
        if (jobId.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || jobId.Contains("..", StringComparison.Ordinal))
            throw new ArgumentException($"Job id '{jobId}' cannot name a checkpoint folder.", nameof(jobId));
        var folder = Path.Combine(root, jobId);
        Directory.CreateDirectory(folder);
        var location = Path.Combine(folder, $"step-{step:D9}.ckpt");
        var temp = location + "." + Guid.NewGuid().ToString("N") + ".tmp";
        await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
        {
            await stream.WriteAsync(payload, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, location, overwrite: true);
        var checksum = Convert.ToHexString(SHA256.HashData(payload));
        return new CheckpointInfo(jobId, step, location, payload.LongLength, checksum, loss, DateTimeOffset.UtcNow);
    }

    public async Task<byte[]> ReadAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(checkpoint.Location))
            throw new FileNotFoundException($"Checkpoint of job '{checkpoint.JobId}' at step {checkpoint.Step} is missing: '{checkpoint.Location}'.", checkpoint.Location);
        var payload = await File.ReadAllBytesAsync(checkpoint.Location, cancellationToken);
        var checksum = Convert.ToHexString(SHA256.HashData(payload));
        if (!string.Equals(checksum, checkpoint.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"Checkpoint '{checkpoint.Location}' has SHA-256 {checksum}, the catalog says {checkpoint.Sha256}; it is corrupt.");
        return payload;
    }

    public Task DeleteAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default)
    {
        File.Delete(checkpoint.Location);
        return Task.CompletedTask;
    }
}
