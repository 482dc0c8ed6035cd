using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace RAE.Models.Data;

/// <summary>
/// The silo's local-disk cache of latent shards. A shard is stored under its manifest SHA-256
/// (<c>DIR/&lt;sha256&gt;.safetensors</c>), so silos and jobs sharing the folder share the files, and a dataset re-encoded
/// under the same name never reads a stale one. The first use of a shard in this process hashes the cached file: a file
/// that does not match (torn, corrupted on disk) is deleted and fetched again; fetched bytes must match the manifest
/// before they are written (temporary file, then an atomic rename). Concurrent requests for one shard share one fetch.
/// </summary>
public sealed class LatentShardCache
{
    private readonly Func<LatentShardEntry, CancellationToken, Task<byte[]>> _fetch;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _verified = new(StringComparer.OrdinalIgnoreCase);
    private int _fetches;
    private int _refetches;

    /// <param name="directory">The cache folder (created when missing).</param>
    /// <param name="fetch">Reads a shard's bytes from the dataset's storage.</param>
    public LatentShardCache(string directory, Func<LatentShardEntry, CancellationToken, Task<byte[]>> fetch, ILogger logger)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
        _fetch = fetch ?? throw new ArgumentNullException(nameof(fetch));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>Shards fetched from storage by this cache so far.</summary>
    public int Fetches => _fetches;

    /// <summary>Cached files found corrupt and fetched again.</summary>
    public int Refetches => _refetches;

    public string PathOf(LatentShardEntry entry) => Path.Combine(Directory, $"{CheckedSha256(entry)}.safetensors");

    /// <summary>The path of the verified local copy of <paramref name="entry"/>, fetching it when needed.</summary>
    public Task<string> GetAsync(LatentShardEntry entry, string datasetName, CancellationToken cancellationToken = default)
    {
        var key = CheckedSha256(entry);
        var lazy = _verified.GetOrAdd(key, _ => new Lazy<Task<string>>(() => VerifyOrFetchAsync(entry, datasetName, cancellationToken)));
        var task = lazy.Value;
        // A failed fetch is not remembered: the next request tries again.
        task.ContinueWith(_ => _verified.TryRemove(new KeyValuePair<string, Lazy<Task<string>>>(key, lazy)),
            CancellationToken.None, TaskContinuationOptions.NotOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return task;
    }

    private async Task<string> VerifyOrFetchAsync(LatentShardEntry entry, string datasetName, CancellationToken cancellationToken)
    {
        var path = PathOf(entry);
        if (File.Exists(path))
        {
            string actual;
            await using (var cached = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, useAsync: true))
                actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(cached, cancellationToken).ConfigureAwait(false));
            if (string.Equals(actual, entry.Sha256, StringComparison.OrdinalIgnoreCase)) return path;
            Interlocked.Increment(ref _refetches);
            _logger.LogWarning("Cached latent shard {Shard} of dataset {Dataset} at {Path} fails its checksum (sha256 {Actual}, manifest {Expected}); fetching it again",
                entry.File, datasetName, path, actual, entry.Sha256);
            File.Delete(path);
        }
        var bytes = await _fetch(entry, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref _fetches);
        var fetched = DatasetManifest.Sha256Hex(bytes);
        if (!string.Equals(fetched, entry.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"latent dataset '{datasetName}' shard {entry.File} fails its checksum (sha256 {fetched}, manifest {entry.Sha256}): the dataset is damaged, encode it again");
        var temporary = Path.Combine(Directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            await File.WriteAllBytesAsync(temporary, bytes, cancellationToken).ConfigureAwait(false);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
        return path;
    }

    private static string CheckedSha256(LatentShardEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Sha256 is not { Length: 64 } sha || !sha.All(char.IsAsciiHexDigit))
            throw new InvalidDataException($"latent shard {entry.File} has no valid SHA-256 in its manifest ('{entry.Sha256}')");
        return sha.ToLowerInvariant();
    }
}
