namespace RAE.Grains.Storage;

/// <summary>
/// Blob storage for latents, checkpoints, sample grids and FID statistics. Paths are relative, '/'-separated
/// (see <see cref="BlobPath"/>). Every blob carries a SHA-256 checksum that is verified on read; large puts are atomic
/// (a reader sees the previous committed version or the new one, never a part). Pointers are small blobs whose
/// value is replaced with ETag compare-and-swap, so that of two writers holding the same ETag exactly one wins.
/// Transient failures are retried within the store's <see cref="BlobStoreRetryOptions"/>, then surface as
/// <see cref="BlobStoreUnavailableException"/>.
/// </summary>
public interface IBlobStore
{
    /// <summary>Where the blobs live, for messages and logs (never contains secrets).</summary>
    string Location { get; }

    /// <summary>Checks at start-up that the store can be reached and written (creating the root folder or container
    /// if absent); throws <see cref="BlobStoreUnavailableException"/> quickly with the reason when it cannot.</summary>
    Task EnsureAvailableAsync(CancellationToken cancellationToken = default);

    /// <summary>Streams <paramref name="content"/> into the blob at <paramref name="path"/> and commits it atomically,
    /// replacing any previous version. The content is read once, front to back.</summary>
    Task<BlobInfo> PutAsync(string path, Stream content, IReadOnlyDictionary<string, string>? metadata = null,
        CancellationToken cancellationToken = default);

    /// <summary>Reads the whole blob and verifies its checksum.</summary>
    /// <exception cref="BlobNotFoundException">No committed blob at the path.</exception>
    /// <exception cref="BlobChecksumMismatchException">The stored bytes do not match the stored checksum.</exception>
    Task<BlobContent> GetAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Opens the blob for streaming; the stream throws <see cref="BlobChecksumMismatchException"/> when the
    /// end is reached and the bytes read do not match the stored checksum (a stream disposed early is not verified).</summary>
    Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Size, checksum, ETag and metadata of a committed blob.</summary>
    Task<BlobInfo> GetInfoAsync(string path, CancellationToken cancellationToken = default);

    Task<bool> ExistsAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Committed blobs whose path starts with <paramref name="prefix"/> ("" lists all), in ordinal path order.</summary>
    IAsyncEnumerable<BlobInfo> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Deletes the blob; false when there was none.</summary>
    Task<bool> DeleteAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Sets the pointer to <paramref name="newValue"/> only if its current ETag is
    /// <paramref name="expectedEtag"/>; a null <paramref name="expectedEtag"/> means "create only if absent".
    /// Returns a failed result (no exception) when another writer got there first.</summary>
    Task<PointerUpdateResult> TryUpdatePointerAsync(string path, string newValue, string? expectedEtag,
        CancellationToken cancellationToken = default);

    /// <summary>The pointer's value and ETag, or null when it does not exist.</summary>
    Task<BlobPointer?> ReadPointerAsync(string path, CancellationToken cancellationToken = default);
}

/// <summary>A committed blob. <see cref="Sha256"/> is lower-case hex; <see cref="ETag"/> is opaque and changes on
/// every write.</summary>
public sealed record BlobInfo(
    string Path,
    long Size,
    string Sha256,
    string ETag,
    DateTimeOffset LastModified,
    IReadOnlyDictionary<string, string> Metadata);

public sealed record BlobContent(BlobInfo Info, byte[] Data);

public sealed record BlobPointer(string Value, string ETag);

/// <summary>Outcome of a compare-and-swap on a pointer: <see cref="ETag"/> is the new ETag when it succeeded.</summary>
public sealed record PointerUpdateResult(bool Succeeded, string? ETag)
{
    public static PointerUpdateResult Lost { get; } = new(false, null);

    public static PointerUpdateResult Won(string etag) => new(true, etag);
}

public static class BlobStoreExtensions
{
    public static async Task<BlobInfo> PutBytesAsync(this IBlobStore store, string path, ReadOnlyMemory<byte> data,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        using var stream = new MemoryStream(data.ToArray(), writable: false);
        return await store.PutAsync(path, stream, metadata, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Like <see cref="IBlobStore.TryUpdatePointerAsync"/>, but a lost race throws
    /// <see cref="BlobConcurrencyException"/>. Returns the new ETag.</summary>
    public static async Task<string> UpdatePointerAsync(this IBlobStore store, string path, string newValue,
        string? expectedEtag, CancellationToken cancellationToken = default)
    {
        var result = await store.TryUpdatePointerAsync(path, newValue, expectedEtag, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new BlobConcurrencyException(path, expectedEtag is null
                ? $"pointer '{path}' in {store.Location} already exists (expected to create it)"
                : $"pointer '{path}' in {store.Location} changed since ETag {expectedEtag} was read");
        }

        return result.ETag!;
    }
}
