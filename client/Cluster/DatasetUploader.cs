using RAE.Grains.Datasets;
using System.Security.Cryptography;
using RAE.GrainInterfaces;
using RAE.Models.Data;

namespace RAE.Client.Cluster;

/// <summary>
/// Sends a dataset built locally (shards + manifest in a folder, see <see cref="DatasetBuilder"/>) to the cluster's
/// <see cref="IDatasetGrain"/> in checksummed chunks, the reverse of <see cref="CheckpointDownloader"/>: the client never
/// needs the silos' storage. A failed upload is aborted, so nothing of it stays behind.
/// </summary>
public static class DatasetUploader
{
    /// <summary>A few MiB per message, far below Orleans' message size limit.</summary>
    public const int ChunkBytes = 4 * 1024 * 1024;

    public static async Task<DatasetDescription> UploadAsync(IGrainFactory grains, DatasetManifest manifest, string folder,
        int chunkBytes = ChunkBytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chunkBytes, IDatasetGrain.MaxChunkBytes);
        var grain = grains.GetGrain<IDatasetGrain>(manifest.Name);
        var uploadId = await grain.BeginUpload();
        try
        {
            var buffer = new byte[chunkBytes];
            foreach (var shard in manifest.Shards)
            {
                await using (var file = new FileStream(Path.Combine(folder, shard.File), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true))
                {
                    long offset = 0;
                    int read;
                    while ((read = await file.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken)) > 0)
                    {
                        var data = buffer[..read];
                        await grain.WriteChunk(new DatasetChunk(uploadId, shard.File, offset, data, DatasetManifest.Sha256Hex(data)));
                        offset += read;
                    }
                }
                var stored = await grain.FinishShard(uploadId, shard.File);
                if (!string.Equals(stored.Sha256, shard.Sha256, StringComparison.OrdinalIgnoreCase))
                    throw new RaeJobException($"dataset '{manifest.Name}': shard {shard.File} arrived with sha256 {stored.Sha256}, it was sent with {shard.Sha256}; the upload was aborted");
            }
            return await grain.Commit(uploadId, DatasetBlobs.ToDescription(manifest));
        }
        catch
        {
            await AbortQuietlyAsync(grain, uploadId);
            throw;
        }
    }

    public static string Sha256Hex(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private static async Task AbortQuietlyAsync(IDatasetGrain grain, string uploadId)
    {
        try
        {
            await grain.Abort(uploadId);
        }
        catch (Exception error) when (error is RaeJobException or TimeoutException or OrleansException)
        {
            // The upload already failed; its leftovers are discarded by the next upload or remove of that name.
        }
    }
}
