using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Checkpoints;

/// <summary>
/// Checkpoint payloads as blobs at <c>checkpoints/{jobId}/step-{step:D9}.g{generation}.ckpt</c> of the configured
/// <see cref="IBlobStore"/> (file system in embedded mode, Azure Blob in cluster mode). The store's atomic put means a
/// writer that dies mid-upload leaves no blob at that path; its checksum is checked on every read. The generation (the
/// writing group's) keeps a stale writer of an older group off the blob of a committed checkpoint; checkpoints written
/// before names carried one (<c>step-{step:D9}.ckpt</c>, generation 0) stay readable.
/// </summary>
public sealed class BlobCheckpointPayloadStore(IBlobStore store) : ICheckpointPayloadStore
{
    public const string Root = "checkpoints";

    public IBlobStore Store => store;

    /// <summary>The blob path of a job's checkpoint written by group <paramref name="generation"/> (0: the name without a
    /// generation); <see cref="ArgumentException"/> when the job id cannot name a folder.</summary>
    public static string PathOf(string jobId, long step, int generation = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(jobId);
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        if (jobId.Contains('/', StringComparison.Ordinal))
            throw new ArgumentException($"Job id '{jobId}' cannot name a checkpoint folder: it contains '/'.", nameof(jobId));
        var path = generation == 0 ? $"{Root}/{jobId}/step-{step:D9}.ckpt" : $"{Root}/{jobId}/step-{step:D9}.g{generation}.ckpt";
        try
        {
            return BlobPath.Validate(path);
        }
        catch (ArgumentException error)
        {
            throw new ArgumentException($"Job id '{jobId}' cannot name a checkpoint folder: {error.Message}.", nameof(jobId), error);
        }
    }

    /// <summary>Where all of a job's payloads live (for listings and clean-up).</summary>
    public static string PrefixOf(string jobId)
    {
        PathOf(jobId, 0);
        return $"{Root}/{jobId}/";
    }

    public async Task<CheckpointInfo> WriteAsync(string jobId, long step, byte[] payload, double? loss, int generation = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payload);
        using var stream = new MemoryStream(payload, writable: false);
        return await WriteAsync(jobId, step, stream, loss, generation, cancellationToken);
    }

    public async Task<CheckpointInfo> WriteAsync(string jobId, long step, Stream payload, double? loss, int generation = 0, CancellationToken cancellationToken = default)
    {
        var path = PathOf(jobId, step, generation);
        var blob = await store.PutAsync(path, payload, new Dictionary<string, string>
        {
            ["job"] = jobId,
            ["step"] = step.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["generation"] = generation.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, cancellationToken);
        return new CheckpointInfo(jobId, step, blob.Path, blob.Size, blob.Sha256, loss, DateTimeOffset.UtcNow, generation);
    }

    public async Task<byte[]> ReadAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default)
    {
        var path = ValidLocation(checkpoint);
        BlobContent content;
        try
        {
            content = await store.GetAsync(path, cancellationToken);
        }
        catch (BlobStoreException error) when (error is BlobNotFoundException or BlobCorruptedException)
        {
            throw Translate(checkpoint, error);
        }
        RequireCatalogedChecksum(checkpoint, content.Info);
        return content.Data;
    }

    public async Task<Stream> OpenReadAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default)
    {
        var path = ValidLocation(checkpoint);
        try
        {
            RequireCatalogedChecksum(checkpoint, await store.GetInfoAsync(path, cancellationToken));
            return new TranslatingReadStream(await store.OpenReadAsync(path, cancellationToken), checkpoint);
        }
        catch (BlobStoreException error) when (error is BlobNotFoundException or BlobCorruptedException)
        {
            throw Translate(checkpoint, error);
        }
    }

    public async Task DeleteAsync(CheckpointInfo checkpoint, CancellationToken cancellationToken = default) =>
        await store.DeleteAsync(ValidLocation(checkpoint), cancellationToken);

    private static string ValidLocation(CheckpointInfo checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        try
        {
            return BlobPath.Validate(checkpoint.Location);
        }
        catch (ArgumentException error)
        {
            throw new InvalidDataException($"Checkpoint of job '{checkpoint.JobId}' at step {checkpoint.Step} names '{checkpoint.Location}', which is not a blob path ({error.Message}); it was written by an older version and cannot be read.", error);
        }
    }

    private void RequireCatalogedChecksum(CheckpointInfo checkpoint, BlobInfo blob)
    {
        if (!string.Equals(blob.Sha256, checkpoint.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"Checkpoint '{checkpoint.Location}' in {store.Location} has SHA-256 {blob.Sha256}, the catalog says {checkpoint.Sha256}; it is corrupt or was replaced.");
    }

    private Exception Translate(CheckpointInfo checkpoint, BlobStoreException error) => error is BlobNotFoundException
        ? new FileNotFoundException($"Checkpoint of job '{checkpoint.JobId}' at step {checkpoint.Step} is missing: no blob '{checkpoint.Location}' in {store.Location}.", checkpoint.Location, error)
        : new InvalidDataException($"Checkpoint of job '{checkpoint.JobId}' at step {checkpoint.Step} is corrupt: {error.Message}.", error);

    /// <summary>Reports a checksum failure at the end of the stream as the interface promises.</summary>
    private sealed class TranslatingReadStream(Stream inner, CheckpointInfo checkpoint) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set => throw new NotSupportedException("checkpoint read streams are forward-only");
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            try
            {
                return inner.Read(buffer, offset, count);
            }
            catch (BlobCorruptedException error)
            {
                throw Corrupt(error);
            }
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken);
            }
            catch (BlobCorruptedException error)
            {
                throw Corrupt(error);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync();
            await base.DisposeAsync();
        }

        private InvalidDataException Corrupt(BlobCorruptedException error) =>
            new($"Checkpoint of job '{checkpoint.JobId}' at step {checkpoint.Step} is corrupt: {error.Message}.", error);
    }
}
