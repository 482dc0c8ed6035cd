using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RAE.Grains.Storage;

/// <summary>
/// Blobs as files under a root folder. A put streams into <c>.staging/</c>, flushes to disk and renames over the
/// target (atomic on one file system), so a killed writer leaves only a staged temp file that no read or listing
/// sees. Checksum, ETag and metadata live in the file's own footer (<see cref="FileSystemBlobFormat"/>), committed by
/// the same rename. Pointer compare-and-swap holds an exclusive lock file (<c>.locks/</c>, FileShare.None, i.e.
/// flock on Linux), which serialises writers across processes on this machine.
/// A blob and a folder cannot share a name here ("a" and "a/b" together are refused), unlike Azure.
/// </summary>
public sealed class FileSystemBlobStore : IBlobStore
{
    private const string StagingFolderName = ".staging";
    private const string LocksFolderName = ".locks";
    // FileShare.None contention: Windows reports ERROR_SHARING_VIOLATION, Unix the raw EWOULDBLOCK of flock.
    private static readonly int[] LockContentionHResults = [unchecked((int)0x80070020), 11, 35];

    private readonly FileSystemBlobStoreOptions options;
    private readonly string root;
    private readonly string stagingFolder;
    private readonly string locksFolder;
    private readonly BlobStoreRetry retry;

    public FileSystemBlobStore(FileSystemBlobStoreOptions options, ILogger<FileSystemBlobStore>? logger = null)
    {
        FileSystemBlobStoreOptionsValidator.ThrowIfInvalid(options);
        this.options = options;
        root = Path.GetFullPath(options.RootPath);
        stagingFolder = Path.Combine(root, StagingFolderName);
        locksFolder = Path.Combine(root, LocksFolderName);
        Location = $"file-system blob store at {root}";
        retry = new BlobStoreRetry(options.Retry, Classify, Location, (ILogger?)logger ?? NullLogger.Instance);
    }

    public string Location { get; }

    public string RootPath => root;

    public Task EnsureAvailableAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            Directory.CreateDirectory(root);
            Directory.CreateDirectory(stagingFolder);
            Directory.CreateDirectory(locksFolder);
            var probe = Path.Combine(stagingFolder, $"probe-{Guid.NewGuid():N}.tmp");
            using (var file = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                file.Write("probe"u8);
                file.Flush(flushToDisk: true);
            }

            File.Delete(probe);
            RemoveStaleStagedFiles();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new BlobStoreUnavailableException(null,
                $"{Location} is not usable (cannot create or write its folders): {BlobStoreRetry.Reason(ex)}", 1, ex);
        }

        return Task.CompletedTask;
    }

    public Task<BlobInfo> PutAsync(string path, Stream content, IReadOnlyDictionary<string, string>? metadata = null,
        CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        ArgumentNullException.ThrowIfNull(content);
        var validMetadata = BlobPath.ValidateMetadata(metadata);
        var startPosition = content.CanSeek ? content.Position : 0;
        var attempts = 0;
        Exception? lastFailure = null;
        return retry.ExecuteAsync("put", path, async ct =>
        {
            if (attempts++ > 0)
            {
                if (!content.CanSeek)
                {
                    throw new BlobStoreUnavailableException(path,
                        $"put '{path}' on {Location} failed and cannot be retried because the content stream is not seekable: "
                        + BlobStoreRetry.Reason(lastFailure!), attempts - 1, lastFailure);
                }

                content.Position = startPosition;
            }

            try
            {
                return await WriteAtomicallyAsync(path, content, validMetadata, ct).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                lastFailure = ex;
                throw;
            }
        }, cancellationToken);
    }

    public Task<BlobContent> GetAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("get", path, async ct =>
        {
            var (stream, info) = OpenVerified(path);
            await using (stream.ConfigureAwait(false))
            {
                var data = new byte[info.Size];
                await stream.ReadExactlyAsync(data, ct).ConfigureAwait(false);
                return new BlobContent(info, data);
            }
        }, cancellationToken);
    }

    public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("open", path, _ => Task.FromResult(OpenVerified(path).Stream), cancellationToken);
    }

    public Task<BlobInfo> GetInfoAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("get info", path,
            _ => Task.FromResult(ReadInfo(path) ?? throw new BlobNotFoundException(path, Location)), cancellationToken);
    }

    public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("exists", path, _ =>
        {
            var exists = File.Exists(FullPath(path));
            if (!exists) ThrowIfRootMissing();
            return Task.FromResult(exists);
        }, cancellationToken);
    }

    public async IAsyncEnumerable<BlobInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        BlobPath.ValidatePrefix(prefix);
        var blobs = await retry.ExecuteAsync("list", prefix, _ => Task.FromResult(ListNow(prefix)), cancellationToken)
            .ConfigureAwait(false);
        foreach (var blob in blobs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return blob;
        }
    }

    public Task<bool> DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("delete", path, async ct =>
        {
            await using var pathLock = await AcquireLockAsync(path, ct).ConfigureAwait(false);
            var full = FullPath(path);
            if (!File.Exists(full))
            {
                ThrowIfRootMissing();
                return false;
            }

            File.Delete(full);
            RemoveEmptyFolders(Path.GetDirectoryName(full)!);
            return true;
        }, cancellationToken);
    }

    public Task<PointerUpdateResult> TryUpdatePointerAsync(string path, string newValue, string? expectedEtag,
        CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        ArgumentNullException.ThrowIfNull(newValue);
        var bytes = Encoding.UTF8.GetBytes(newValue);
        return retry.ExecuteAsync("update pointer", path, async ct =>
        {
            await using var pathLock = await AcquireLockAsync(path, ct).ConfigureAwait(false);
            var current = ReadInfo(path);
            var matches = expectedEtag is null ? current is null : current?.ETag == expectedEtag;
            if (!matches) return PointerUpdateResult.Lost;
            using var content = new MemoryStream(bytes, writable: false);
            var written = await WriteAtomicallyAsync(path, content, BlobPath.ValidateMetadata(null), ct).ConfigureAwait(false);
            return PointerUpdateResult.Won(written.ETag);
        }, cancellationToken);
    }

    public async Task<BlobPointer?> ReadPointerAsync(string path, CancellationToken cancellationToken = default)
    {
        try
        {
            var content = await GetAsync(path, cancellationToken).ConfigureAwait(false);
            return new BlobPointer(PointerValue.Decode(path, content.Data, Location), content.Info.ETag);
        }
        catch (BlobNotFoundException)
        {
            return null;
        }
    }

    private async Task<BlobInfo> WriteAtomicallyAsync(string path, Stream content, IReadOnlyDictionary<string, string> metadata,
        CancellationToken cancellationToken)
    {
        var target = FullPath(path);
        PrepareParentFolders(path, target);
        Directory.CreateDirectory(stagingFolder);
        var staged = Path.Combine(stagingFolder, $"{Guid.NewGuid():N}.tmp");
        try
        {
            FileSystemBlobFormat.Footer footer;
            var file = new FileStream(staged, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous);
            await using (file.ConfigureAwait(false))
            {
                footer = await FileSystemBlobFormat.WriteAsync(file, new SourceReadStream(content), metadata, cancellationToken)
                    .ConfigureAwait(false);
            }

            File.Move(staged, target, overwrite: true);
            return ToInfo(path, footer);
        }
        catch
        {
            TryDelete(staged);
            throw;
        }
    }

    private (Stream Stream, BlobInfo Info) OpenVerified(string path)
    {
        var full = FullPath(path);
        if (Directory.Exists(full)) throw new BlobNotFoundException(path, Location);
        FileStream file;
        try
        {
            file = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16,
                FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            ThrowIfRootMissing();
            throw new BlobNotFoundException(path, Location);
        }

        try
        {
            var footer = FileSystemBlobFormat.ReadFooter(file, path, Location);
            file.Position = FileSystemBlobFormat.ContentOffset;
            return (new ChecksumVerifyingStream(file, path, footer.Size, footer.Sha256, Location), ToInfo(path, footer));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private BlobInfo? ReadInfo(string path)
    {
        var full = FullPath(path);
        if (Directory.Exists(full)) return null;
        try
        {
            using var file = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 4096);
            return ToInfo(path, FileSystemBlobFormat.ReadFooter(file, path, Location));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            ThrowIfRootMissing();
            return null;
        }
    }

    private List<BlobInfo> ListNow(string prefix)
    {
        var lastSlash = prefix.LastIndexOf('/');
        var startFolder = lastSlash < 0 ? root : FullPath(prefix[..lastSlash]);
        var blobs = new List<BlobInfo>();
        ThrowIfRootMissing();
        if (!Directory.Exists(startFolder)) return blobs;
        var enumeration = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false };
        foreach (var file in Directory.EnumerateFiles(startFolder, "*", enumeration))
        {
            var relative = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            if (!relative.StartsWith(prefix, StringComparison.Ordinal) || relative.Split('/').Any(s => s.StartsWith('.'))) continue;
            if (ReadInfo(relative) is { } info) blobs.Add(info);
        }

        blobs.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return blobs;
    }

    /// <summary>Creates the folders above a blob, refusing a path that would need a folder where a blob is (or a
    /// blob where a folder is), so the caller gets a clear error instead of an I/O failure that looks transient.</summary>
    private void PrepareParentFolders(string path, string target)
    {
        var segments = path.Split('/');
        for (var depth = 1; depth < segments.Length; depth++)
        {
            var ancestor = string.Join('/', segments[..depth]);
            if (File.Exists(FullPath(ancestor)))
                throw new ArgumentException($"blob path '{path}' needs a folder '{ancestor}', but a blob of that name exists in {Location}", nameof(path));
        }

        if (Directory.Exists(target))
            throw new ArgumentException($"blob path '{path}' is a folder of other blobs in {Location}", nameof(path));
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
    }

    private async Task<FileStream> AcquireLockAsync(string path, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(locksFolder);
        var lockPath = Path.Combine(locksFolder, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(path))) + ".lock");
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
            }
            catch (IOException ex) when (LockContentionHResults.Contains(ex.HResult))
            {
                if (waited.Elapsed > options.LockTimeout)
                {
                    throw new BlobConcurrencyException(path,
                        $"'{path}' in {Location} stayed locked by another writer for over {options.LockTimeout.TotalSeconds:0.#} s (lock file {lockPath})", ex);
                }

                await Task.Delay(Random.Shared.Next(1, 10), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private void RemoveStaleStagedFiles()
    {
        var cutoff = DateTime.UtcNow - options.StaleStagingAge;
        foreach (var staged in Directory.EnumerateFiles(stagingFolder, "*.tmp"))
        {
            if (File.GetLastWriteTimeUtc(staged) < cutoff) TryDelete(staged);
        }
    }

    private void RemoveEmptyFolders(string folder)
    {
        while (folder.Length > root.Length && folder.StartsWith(root, StringComparison.Ordinal))
        {
            try
            {
                if (Directory.EnumerateFileSystemEntries(folder).Any()) return;
                Directory.Delete(folder);
            }
            catch (IOException)
            {
                return; // a concurrent put has just added something
            }

            folder = Path.GetDirectoryName(folder)!;
        }
    }

    /// <summary>A missing root means the store is not there (unmounted, wrong path), not that a blob is absent;
    /// the I/O exception is retried like any other and then reported as unavailable.</summary>
    private void ThrowIfRootMissing()
    {
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"the root folder {root} does not exist or is not a folder");
    }

    private string FullPath(string path) => Path.Combine(root, path.Replace('/', Path.DirectorySeparatorChar));

    private static BlobInfo ToInfo(string path, FileSystemBlobFormat.Footer footer) =>
        new(path, footer.Size, footer.Sha256, footer.ETag, footer.LastModified, footer.Metadata);

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static FailureKind Classify(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => FailureKind.PassThrough,
        ArgumentException => FailureKind.PassThrough,
        FileNotFoundException => FailureKind.PassThrough,
        IOException => FailureKind.Transient,
        UnauthorizedAccessException => FailureKind.Permanent,
        _ => FailureKind.PassThrough,
    };
}

internal static class PointerValue
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static string Decode(string path, byte[] data, string location)
    {
        try
        {
            return StrictUtf8.GetString(data);
        }
        catch (DecoderFallbackException ex)
        {
            throw new BlobCorruptedException(path, $"pointer '{path}' in {location} is not UTF-8 text", ex);
        }
    }
}
