using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Data;

namespace RAE.Grains.Datasets;

/// <summary>
/// One dataset in the blob store. Upload state lives only in this activation (scratch files on the silo's disk):
/// when the activation or its silo goes, the upload is lost and the client starts again; nothing half-written is
/// ever listed because only <see cref="Commit"/> writes the manifest, after checking every shard against it.
/// </summary>
public sealed class DatasetGrain(IBlobStore store) : Grain, IDatasetGrain
{
    private static readonly byte[] ShardMagic = "RAEIMGS1"u8.ToArray();

    private readonly Dictionary<string, FileStream> _open = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DatasetShard> _finished = new(StringComparer.Ordinal);
    private string? _uploadId;

    private string Name => this.GetPrimaryKeyString();

    public Task<string> BeginUpload() => Guarded(async () =>
    {
        DatasetNames.Validate(Name);
        if (await store.ExistsAsync(DatasetBlobs.ManifestPathOf(Name)))
            throw new RaeJobException($"dataset '{Name}' already exists; remove it first (rae datasets remove {Name})");
        await DropUploadAsync();
        _uploadId = Guid.NewGuid().ToString("N");
        return _uploadId;
    });

    public Task WriteChunk(DatasetChunk chunk) => Guarded(async () =>
    {
        ArgumentNullException.ThrowIfNull(chunk);
        RequireUpload(chunk.UploadId);
        var shard = DatasetBlobs.ValidateShardName(Name, chunk.Shard);
        if (_finished.ContainsKey(shard)) throw new RaeJobException($"dataset '{Name}': shard {shard} is already finished");
        if (chunk.Data is null || chunk.Data.Length is 0 or > IDatasetGrain.MaxChunkBytes)
            throw new RaeJobException($"dataset '{Name}': a chunk of {shard} holds {chunk.Data?.Length ?? 0} bytes (1..{IDatasetGrain.MaxChunkBytes} allowed)");
        var actual = Convert.ToHexStringLower(SHA256.HashData(chunk.Data));
        if (!string.Equals(actual, chunk.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new RaeJobException($"dataset '{Name}': the chunk of {shard} at offset {chunk.Offset} fails its checksum (sha256 {actual}, sent {chunk.Sha256}); it was refused");
        if (!_open.TryGetValue(shard, out var scratch))
        {
            scratch = new FileStream(Path.Combine(Path.GetTempPath(), $"rae-dataset-{Guid.NewGuid():N}.tmp"), FileMode.CreateNew,
                FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 20, FileOptions.DeleteOnClose);
            _open[shard] = scratch;
        }
        if (chunk.Offset != scratch.Length)
            throw new RaeJobException($"dataset '{Name}': the chunk of {shard} starts at offset {chunk.Offset}, but {scratch.Length} bytes have arrived");
        await scratch.WriteAsync(chunk.Data);
    });

    public Task<DatasetShard> FinishShard(string uploadId, string shard) => Guarded(async () =>
    {
        RequireUpload(uploadId);
        DatasetBlobs.ValidateShardName(Name, shard);
        if (!_open.Remove(shard, out var scratch)) throw new RaeJobException($"dataset '{Name}': no chunk of shard {shard} has arrived");
        await using (scratch)
        {
            await scratch.FlushAsync();
            var images = ReadImageCount(scratch, shard);
            scratch.Position = 0;
            var blob = await store.PutAsync(DatasetBlobs.ShardPathOf(Name, shard), scratch, new Dictionary<string, string> { ["dataset"] = Name });
            var stored = new DatasetShard(shard, images, blob.Size, blob.Sha256);
            _finished[shard] = stored;
            return stored;
        }
    });

    public Task<DatasetDescription> Commit(string uploadId, DatasetDescription manifest) => Guarded(async () =>
    {
        ArgumentNullException.ThrowIfNull(manifest);
        RequireUpload(uploadId);
        try
        {
            var json = await VerifyAsync(manifest);
            await store.PutBytesAsync(DatasetBlobs.ManifestPathOf(Name), Encoding.UTF8.GetBytes(json), new Dictionary<string, string> { ["dataset"] = Name });
        }
        catch
        {
            await DropUploadAsync();
            throw;
        }
        CloseScratches();
        _finished.Clear();
        _uploadId = null;
        return manifest;
    });

    public Task Abort(string uploadId) => Guarded(async () =>
    {
        if (_uploadId is not null && _uploadId == uploadId) await DropUploadAsync();
        return true;
    });

    public Task<DatasetDescription> Describe() => Guarded(async () =>
    {
        DatasetNames.Validate(Name);
        BlobContent content;
        try
        {
            content = await store.GetAsync(DatasetBlobs.ManifestPathOf(Name));
        }
        catch (BlobNotFoundException)
        {
            throw new RaeJobException(_uploadId is null
                ? $"no dataset named '{Name}' (rae datasets list shows the datasets)"
                : $"dataset '{Name}' is being uploaded and is not committed yet");
        }
        return Parse(Name, content.Data);
    });

    public Task<bool> Remove() => Guarded(async () =>
    {
        DatasetNames.Validate(Name);
        var existed = _uploadId is not null;
        await DropUploadAsync();
        // The manifest goes first: from then on the dataset is not listed, whatever happens to its shards.
        existed |= await store.DeleteAsync(DatasetBlobs.ManifestPathOf(Name));
        existed |= await DeleteBlobsAsync();
        return existed;
    });

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        CloseScratches();
        return base.OnDeactivateAsync(reason, cancellationToken);
    }

    internal static DatasetDescription Parse(string name, byte[] manifestBytes)
    {
        try
        {
            return DatasetBlobs.ToDescription(DatasetManifest.FromJson(Encoding.UTF8.GetString(manifestBytes), $"the manifest of dataset '{name}'"));
        }
        catch (InvalidDataException error)
        {
            throw new RaeJobException(error.Message);
        }
    }

    /// <summary>The manifest JSON once the stored shards are exactly the manifest's, size and SHA-256 included.</summary>
    private async Task<string> VerifyAsync(DatasetDescription manifest)
    {
        if (manifest.Name != Name) throw new RaeJobException($"a manifest of dataset '{manifest.Name}' was sent to dataset '{Name}'");
        if (_open.Count > 0) throw new RaeJobException($"dataset '{Name}': shard {_open.Keys.First()} was never finished");
        var listed = manifest.Shards.Select(s => s.File).ToHashSet(StringComparer.Ordinal);
        if (listed.Count != manifest.Shards.Count) throw new RaeJobException($"dataset '{Name}': the manifest lists a shard twice");
        if (manifest.Shards.FirstOrDefault(s => !_finished.ContainsKey(s.File)) is { } missing)
            throw new RaeJobException($"dataset '{Name}': the manifest lists {missing.File}, which was never uploaded");
        if (_finished.Keys.FirstOrDefault(file => !listed.Contains(file)) is { } extra)
            throw new RaeJobException($"dataset '{Name}': shard {extra} was uploaded but the manifest does not list it");
        foreach (var shard in manifest.Shards)
        {
            var stored = await store.GetInfoAsync(DatasetBlobs.ShardPathOf(Name, shard.File));
            if (stored.Size != shard.Bytes || !string.Equals(stored.Sha256, shard.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new RaeJobException($"dataset '{Name}': shard {shard.File} was stored as {stored.Size} bytes with sha256 {stored.Sha256}, the manifest says {shard.Bytes} bytes with {shard.Sha256}; the upload was refused");
            if (_finished[shard.File].Images != shard.Images)
                throw new RaeJobException($"dataset '{Name}': shard {shard.File} holds {_finished[shard.File].Images} images, the manifest says {shard.Images}");
        }
        var json = DatasetBlobs.ToManifest(manifest).ToJson();
        Parse(Name, Encoding.UTF8.GetBytes(json));
        return json;
    }

    private int ReadImageCount(FileStream scratch, string shard)
    {
        Span<byte> head = stackalloc byte[12];
        scratch.Position = 0;
        if (scratch.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) < head.Length || !head[..8].SequenceEqual(ShardMagic))
            throw new RaeJobException($"dataset '{Name}': {shard} is not an image shard (missing the RAEIMGS1 signature)");
        return BinaryPrimitives.ReadInt32LittleEndian(head[8..]);
    }

    private void RequireUpload(string uploadId)
    {
        if (_uploadId is null || _uploadId != uploadId)
            throw new RaeJobException($"dataset '{Name}' has no upload {uploadId} in progress (it was aborted, replaced or lost with its silo); start the upload again");
    }

    private async Task DropUploadAsync()
    {
        CloseScratches();
        _finished.Clear();
        _uploadId = null;
        if (!await store.ExistsAsync(DatasetBlobs.ManifestPathOf(Name))) await DeleteBlobsAsync();
    }

    private async Task<bool> DeleteBlobsAsync()
    {
        var any = false;
        await foreach (var blob in store.ListAsync(DatasetBlobs.PrefixOf(Name)))
            any |= await store.DeleteAsync(blob.Path);
        return any;
    }

    private void CloseScratches()
    {
        foreach (var scratch in _open.Values) scratch.Dispose();
        _open.Clear();
    }

    /// <summary>Storage failures reach the client as a <see cref="RaeJobException"/> naming the store and the reason.</summary>
    private static async Task<T> Guarded<T>(Func<Task<T>> work)
    {
        try
        {
            return await work();
        }
        catch (BlobStoreException error)
        {
            throw new RaeJobException($"dataset storage failed: {error.Message}");
        }
    }

    private static Task Guarded(Func<Task> work) => Guarded(async () =>
    {
        await work();
        return true;
    });
}
