using System.Security.Cryptography;
using RAE.GrainInterfaces;

namespace RAE.Client.Cluster;

/// <summary>
/// Fetches a committed checkpoint's payload through the cluster (the job's <see cref="ICheckpointStoreGrain"/> streams
/// it in chunks from the silos' blob store), so the client never needs the silos' storage. The bytes are checked
/// against the catalog's size and SHA-256 on arrival.
/// </summary>
public static class CheckpointDownloader
{
    /// <summary>A few MiB per message: far below Orleans' message size limit, large enough that a 1 GB DiT^DH-S
    /// checkpoint takes a few hundred round trips.</summary>
    public const int ChunkBytes = 4 * 1024 * 1024;

    /// <summary>Streams the payload into <paramref name="destination"/>; <see cref="RaeJobException"/> when the cluster
    /// cannot serve it or the bytes do not match the catalog (what was written to the destination must then be discarded).</summary>
    public static async Task<long> DownloadAsync(IGrainFactory grains, CheckpointInfo checkpoint, Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long received = 0;
        var chunks = grains.GetGrain<ICheckpointStoreGrain>(checkpoint.JobId).ReadPayload(checkpoint.Step, ChunkBytes, cancellationToken).WithBatchSize(1);
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            hash.AppendData(chunk);
            await destination.WriteAsync(chunk, cancellationToken);
            received += chunk.Length;
        }
        var checksum = Convert.ToHexString(hash.GetHashAndReset());
        if (received != checkpoint.SizeBytes || !string.Equals(checksum, checkpoint.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new RaeJobException($"Checkpoint '{checkpoint.Location}' of job '{checkpoint.JobId}' at step {checkpoint.Step} arrived as {received} bytes with SHA-256 {checksum}, the catalog says {checkpoint.SizeBytes} bytes with {checkpoint.Sha256}; it is corrupt.");
        return received;
    }
}
