using System.Security.Cryptography;
using RAE.GrainInterfaces;

namespace RAE.Client.Cluster;

/// <summary>
/// Files between the client and the cluster's blob store without storage credentials: a local <c>.npz</c> goes up in
/// checksummed chunks through an <see cref="IEvaluationUploadGrain"/>; a sampling job's outputs come down through its
/// <see cref="ISamplingExportGrain"/>, each file checked against the size and SHA-256 the cluster lists.
/// </summary>
public static class EvaluationTransfers
{
    public const int ChunkBytes = 4 * 1024 * 1024;

    /// <summary>Uploads <paramref name="path"/>; returns its blob path.</summary>
    public static async Task<string> UploadAsync(IGrainFactory grains, string path, CancellationToken cancellationToken = default)
    {
        var upload = grains.GetGrain<IEvaluationUploadGrain>(Guid.NewGuid().ToString("N"));
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
        var buffer = new byte[ChunkBytes];
        long offset = 0;
        while (true)
        {
            var read = await file.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
            if (read == 0) break;
            var data = buffer[..read];
            whole.AppendData(data);
            await upload.WriteChunk(new UploadChunk(offset, data, Convert.ToHexStringLower(SHA256.HashData(data))));
            offset += read;
        }
        if (offset == 0) throw new RaeJobException($"'{path}' is empty");
        return await upload.Finish(Path.GetFileName(path), offset, Convert.ToHexStringLower(whole.GetHashAndReset()));
    }

    /// <summary>Downloads every output file of a completed sampling job into <paramref name="folder"/>; returns what was written.</summary>
    public static async Task<IReadOnlyList<ExportFile>> ExportSamplesAsync(IGrainFactory grains, string jobId, string folder, CancellationToken cancellationToken = default)
    {
        var export = grains.GetGrain<ISamplingExportGrain>(jobId);
        var files = await export.ListFiles();
        var root = Path.GetFullPath(folder);
        foreach (var file in files)
        {
            var target = Path.GetFullPath(Path.Combine(root, file.Name));
            if (!target.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new RaeJobException($"Sampling job '{jobId}' lists '{file.Name}', which is outside the output folder; refused.");
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            var temporary = target + ".part";
            try
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                long received = 0;
                await using (var output = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                {
                    await foreach (var chunk in export.ReadFile(file.Name, ChunkBytes, cancellationToken).WithBatchSize(1).WithCancellation(cancellationToken))
                    {
                        hash.AppendData(chunk);
                        await output.WriteAsync(chunk, cancellationToken);
                        received += chunk.Length;
                    }
                }
                var checksum = Convert.ToHexStringLower(hash.GetHashAndReset());
                if (received != file.Size || !string.Equals(checksum, file.Sha256, StringComparison.OrdinalIgnoreCase))
                    throw new RaeJobException($"'{file.Name}' of sampling job '{jobId}' arrived as {received} bytes with SHA-256 {checksum}, the cluster lists {file.Size} bytes with {file.Sha256}; it was discarded.");
                File.Move(temporary, target, overwrite: true);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
        return files;
    }
}
