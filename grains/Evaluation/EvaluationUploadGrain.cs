using System.Security.Cryptography;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Evaluation;

/// <summary>
/// Takes a client's file (an <c>.npz</c> to evaluate) in checked chunks into a scratch file on this silo, then stores it
/// in the blob store under <c>uploads/ID/NAME</c>. The upload lives only in this activation: if it goes, the client starts again.
/// </summary>
public sealed class EvaluationUploadGrain(IBlobStore blobs) : Grain, IEvaluationUploadGrain
{
    public const string Root = "uploads";

    private FileStream? _scratch;

    private string UploadId => this.GetPrimaryKeyString();

    public async Task WriteChunk(UploadChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        if (chunk.Data is null || chunk.Data.Length is 0 or > IEvaluationUploadGrain.MaxChunkBytes)
            throw new RaeJobException($"upload '{UploadId}': a chunk holds {chunk.Data?.Length ?? 0} bytes (1..{IEvaluationUploadGrain.MaxChunkBytes} allowed)");
        var actual = Convert.ToHexStringLower(SHA256.HashData(chunk.Data));
        if (!string.Equals(actual, chunk.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new RaeJobException($"upload '{UploadId}': the chunk at offset {chunk.Offset} fails its checksum (sha256 {actual}, sent {chunk.Sha256}); it was refused");
        _scratch ??= new FileStream(Path.Combine(Path.GetTempPath(), $"rae-upload-{Guid.NewGuid():N}.tmp"), FileMode.CreateNew,
            FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 20, FileOptions.DeleteOnClose);
        if (chunk.Offset != _scratch.Length)
            throw new RaeJobException($"upload '{UploadId}': the chunk starts at offset {chunk.Offset}, but {_scratch.Length} bytes have arrived");
        await _scratch.WriteAsync(chunk.Data);
    }

    public async Task<string> Finish(string fileName, long size, string sha256)
    {
        var name = Path.GetFileName(fileName ?? "");
        if (name.Length == 0 || name != fileName || name.StartsWith('.'))
            throw new RaeJobException($"upload '{UploadId}': '{fileName}' is not a plain file name");
        var scratch = _scratch ?? throw new RaeJobException($"upload '{UploadId}': no chunk has arrived (the upload's silo may have restarted; upload again)");
        _scratch = null;
        await using (scratch)
        {
            await scratch.FlushAsync();
            if (scratch.Length != size) throw new RaeJobException($"upload '{UploadId}': {scratch.Length} bytes arrived, the client sent {size}");
            scratch.Position = 0;
            var location = $"{Root}/{UploadId}/{name}";
            var stored = await blobs.PutAsync(location, scratch, new Dictionary<string, string> { ["upload"] = UploadId });
            if (!string.Equals(stored.Sha256, sha256, StringComparison.OrdinalIgnoreCase))
            {
                await blobs.DeleteAsync(location);
                throw new RaeJobException($"upload '{UploadId}': the stored file has SHA-256 {stored.Sha256}, the client's is {sha256}; it was discarded");
            }
            DeactivateOnIdle();
            return location;
        }
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_scratch is { } scratch) await scratch.DisposeAsync();
        _scratch = null;
    }
}
