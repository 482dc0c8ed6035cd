using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Evaluation;

/// <summary>
/// Serves a sampling job's outputs (<c>samples.npz</c> and <c>images/NNNNNN.png</c>) to clients in chunks, with the sizes
/// and SHA-256 the blob store recorded; each file is verified against them before its last chunk goes out.
/// </summary>
public sealed class SamplingExportGrain(IBlobStore blobs) : Grain, ISamplingExportGrain
{
    private string JobId => this.GetPrimaryKeyString();

    public async Task<IReadOnlyList<ExportFile>> ListFiles()
    {
        var status = await GrainFactory.GetGrain<ISamplingJobGrain>(JobId).GetStatus();
        if (status.State != JobState.Completed)
            throw new RaeJobException($"Sampling job '{JobId}' is {status.State.ToString().ToLowerInvariant()}; its outputs can be exported once it has completed.");
        var prefix = $"samples/{JobId}/";
        var files = new List<ExportFile>();
        if (status.OutputLocation is { } npz && npz.EndsWith(".npz", StringComparison.Ordinal))
        {
            var info = await blobs.GetInfoAsync(npz);
            files.Add(new ExportFile(Path.GetFileName(npz), info.Size, info.Sha256));
        }
        if (status.ImagesLocation is { } images)
        {
            await foreach (var png in blobs.ListAsync(images.TrimEnd('/') + "/"))
                files.Add(new ExportFile(png.Path[prefix.Length..], png.Size, png.Sha256));
        }
        if (files.Count == 0)
            throw new RaeJobException($"Sampling job '{JobId}' kept latents only (no Stage 1 decoder): it has no .npz or PNGs to export.");
        return files;
    }

    public async IAsyncEnumerable<byte[]> ReadFile(string name, int chunkBytes, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (chunkBytes is < 1 or > ISamplingExportGrain.MaxChunkBytes)
            throw new RaeJobException($"Chunk size {chunkBytes} is out of range: it must be within 1..{ISamplingExportGrain.MaxChunkBytes} bytes.");
        var listed = (await ListFiles()).FirstOrDefault(file => file.Name == name)
            ?? throw new RaeJobException($"Sampling job '{JobId}' has no output file '{name}'.");
        var path = $"samples/{JobId}/{name}";
        Stream stream;
        try
        {
            stream = await blobs.OpenReadAsync(path, cancellationToken);
        }
        catch (BlobStoreException error)
        {
            throw new RaeJobException($"Sampling job '{JobId}': '{name}' cannot be read: {error.Message}");
        }
        await using (stream)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long sent = 0;
            while (true)
            {
                var buffer = new byte[(int)Math.Clamp(listed.Size - sent, 1, chunkBytes)];
                int filled;
                try
                {
                    filled = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
                }
                catch (BlobStoreException error)
                {
                    throw new RaeJobException($"Sampling job '{JobId}': '{name}' is corrupt or unreadable: {error.Message}");
                }
                if (filled == 0) break;
                var chunk = filled == buffer.Length ? buffer : buffer[..filled];
                hash.AppendData(chunk);
                sent += filled;
                if (sent == listed.Size && !string.Equals(Convert.ToHexStringLower(hash.GetHashAndReset()), listed.Sha256, StringComparison.OrdinalIgnoreCase))
                    throw new RaeJobException($"Sampling job '{JobId}': '{name}' does not match its recorded SHA-256 {listed.Sha256}; it is corrupt.");
                yield return chunk;
            }
            if (sent != listed.Size)
                throw new RaeJobException($"Sampling job '{JobId}': '{name}' holds {sent} bytes, {listed.Size} were recorded; it is corrupt.");
        }
    }
}
