using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RAE.Grains.Storage;

/// <summary>
/// Blobs in an Azure Storage container (Azurite locally). A put stages fixed-size blocks (each retried on its own,
/// with a transactional MD5) and commits them with one CommitBlockList that also writes the SHA-256 into the blob's
/// metadata: until that commit nothing is visible, and a writer killed mid-upload leaves only uncommitted blocks that
/// never replace the previous version. Pointers are single Put Blob requests conditioned on If-Match (or
/// If-None-Match: * to create), so the service decides which of two writers wins.
/// </summary>
public sealed class AzureBlobStore : IBlobStore
{
    private const string Sha256Key = BlobPath.ReservedMetadataPrefix + "sha256";
    private const string WriteIdKey = BlobPath.ReservedMetadataPrefix + "write_id";

    private readonly AzureBlobStoreOptions options;
    private readonly BlobContainerClient container;
    private readonly BlobContainerClient startupContainer;
    private readonly BlobStoreRetry retry;
    private readonly bool isLoopback;

    public AzureBlobStore(AzureBlobStoreOptions options, ILogger<AzureBlobStore>? logger = null)
    {
        AzureBlobStoreOptionsValidator.ThrowIfInvalid(options);
        this.options = options;
        var service = new BlobServiceClient(options.ConnectionString, ClientOptions(options, options.RequestTimeout));
        container = service.GetBlobContainerClient(options.ContainerName);
        startupContainer = new BlobServiceClient(options.ConnectionString, ClientOptions(options, options.StartupTimeout))
            .GetBlobContainerClient(options.ContainerName);
        var endpoint = new UriBuilder(service.Uri) { Query = "" }.Uri;
        isLoopback = endpoint.IsLoopback;
        Location = $"Azure blob container '{options.ContainerName}' at {endpoint}";
        retry = new BlobStoreRetry(options.Retry, Classify, Location, (ILogger?)logger ?? NullLogger.Instance);
    }

    public string Location { get; }

    public async Task EnsureAvailableAsync(CancellationToken cancellationToken = default)
    {
        var elapsed = Stopwatch.StartNew();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await startupContainer.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (Classify(ex, cancellationToken) != FailureKind.PassThrough)
            {
                var pause = TimeSpan.FromMilliseconds(Math.Min(250 * attempt, 1000));
                if (Classify(ex, cancellationToken) == FailureKind.Permanent || elapsed.Elapsed + pause >= options.StartupTimeout)
                {
                    var hint = isLoopback ? " Is Azurite running? Start it with 'infra/azurite.sh start'." : "";
                    throw new BlobStoreUnavailableException(null,
                        $"{Location} is unreachable at start-up ({attempt} attempt(s) in {elapsed.Elapsed.TotalSeconds:0.0} s): "
                        + $"{BlobStoreRetry.Reason(ex)}.{hint}", attempt, ex);
                }

                await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public async Task<BlobInfo> PutAsync(string path, Stream content, IReadOnlyDictionary<string, string>? metadata = null,
        CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        ArgumentNullException.ThrowIfNull(content);
        var userMetadata = BlobPath.ValidateMetadata(metadata);
        var blob = container.GetBlockBlobClient(path);
        var (blockIds, size, sha256) = await StageBlocksAsync(blob, path, new SourceReadStream(content), cancellationToken)
            .ConfigureAwait(false);

        var commitMetadata = new Dictionary<string, string>(userMetadata) { [Sha256Key] = sha256 };
        var commit = new CommitBlockListOptions
        {
            Metadata = commitMetadata,
            HttpHeaders = new BlobHttpHeaders { ContentType = "application/octet-stream" },
        };
        var committed = await retry.ExecuteAsync("commit", path, async ct =>
        {
            try
            {
                return (await blob.CommitBlockListAsync(blockIds, commit, ct).ConfigureAwait(false)).Value;
            }
            catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.InvalidBlockList)
            {
                throw new BlobConcurrencyException(path,
                    $"put '{path}' on {Location} lost its staged blocks: another writer committed the same path meanwhile", ex);
            }
        }, cancellationToken).ConfigureAwait(false);
        return new BlobInfo(path, size, sha256, committed.ETag.ToString(), committed.LastModified, userMetadata);
    }

    public Task<BlobContent> GetAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("get", path, async ct =>
        {
            var (stream, info) = await OpenVerifiedAsync(path, ct).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                var data = new byte[info.Size];
                await stream.ReadExactlyAsync(data, ct).ConfigureAwait(false);
                return new BlobContent(info, data);
            }
        }, cancellationToken);
    }

    public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        var (stream, _) = await retry.ExecuteAsync("open", path, ct => OpenVerifiedAsync(path, ct), cancellationToken)
            .ConfigureAwait(false);
        return stream;
    }

    public Task<BlobInfo> GetInfoAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("get info", path, async ct =>
        {
            try
            {
                var properties = (await container.GetBlobClient(path).GetPropertiesAsync(cancellationToken: ct).ConfigureAwait(false)).Value;
                return ToInfo(path, properties.ContentLength, properties.ETag, properties.LastModified, properties.Metadata);
            }
            catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.BlobNotFound || (ex.Status == 404 && ex.ErrorCode is null))
            {
                throw new BlobNotFoundException(path, Location);
            }
        }, cancellationToken);
    }

    public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        return retry.ExecuteAsync("exists", path,
            async ct => (await container.GetBlobClient(path).ExistsAsync(ct).ConfigureAwait(false)).Value, cancellationToken);
    }

    public async IAsyncEnumerable<BlobInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        BlobPath.ValidatePrefix(prefix);
        var blobs = await retry.ExecuteAsync("list", prefix, async ct =>
        {
            var found = new List<BlobInfo>();
            var query = new GetBlobsOptions { Traits = BlobTraits.Metadata, Prefix = prefix.Length == 0 ? null : prefix };
            await foreach (var item in container.GetBlobsAsync(query, ct).ConfigureAwait(false))
            {
                found.Add(ToInfo(item.Name, item.Properties.ContentLength ?? 0, item.Properties.ETag ?? default,
                    item.Properties.LastModified ?? default, item.Metadata));
            }

            found.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
            return found;
        }, cancellationToken).ConfigureAwait(false);
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
            (await container.GetBlobClient(path).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: ct)
                .ConfigureAwait(false)).Value, cancellationToken);
    }

    public Task<PointerUpdateResult> TryUpdatePointerAsync(string path, string newValue, string? expectedEtag,
        CancellationToken cancellationToken = default)
    {
        BlobPath.Validate(path);
        ArgumentNullException.ThrowIfNull(newValue);
        var bytes = Encoding.UTF8.GetBytes(newValue);
        var writeId = Guid.NewGuid().ToString("N");
        var upload = new BlobUploadOptions
        {
            Metadata = new Dictionary<string, string>
            {
                [Sha256Key] = Convert.ToHexStringLower(SHA256.HashData(bytes)),
                [WriteIdKey] = writeId,
            },
            HttpHeaders = new BlobHttpHeaders { ContentType = "text/plain; charset=utf-8" },
            Conditions = expectedEtag is null
                ? new BlobRequestConditions { IfNoneMatch = ETag.All }
                : new BlobRequestConditions { IfMatch = new ETag(expectedEtag) },
        };
        var blob = container.GetBlobClient(path);
        var attempts = 0;
        return retry.ExecuteAsync("update pointer", path, async ct =>
        {
            attempts++;
            try
            {
                var written = await blob.UploadAsync(BinaryData.FromBytes(bytes), upload, ct).ConfigureAwait(false);
                return PointerUpdateResult.Won(written.Value.ETag.ToString());
            }
            catch (RequestFailedException ex) when (ex.Status is 409 or 412 || ex.ErrorCode == BlobErrorCode.BlobNotFound)
            {
                // After a lost response, our own earlier attempt may be what now fails the condition.
                if (attempts > 1 && await WrittenByAsync(blob, writeId, ct).ConfigureAwait(false) is { } ownEtag)
                    return PointerUpdateResult.Won(ownEtag);
                return PointerUpdateResult.Lost;
            }
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

    private async Task<(List<string> BlockIds, long Size, string Sha256)> StageBlocksAsync(
        BlockBlobClient blob, string path, Stream source, CancellationToken cancellationToken)
    {
        var uploadId = Guid.NewGuid().ToString("N");
        var blockIds = new List<string>();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var upload = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var inFlight = new List<Task>();
        long size = 0;
        try
        {
            while (true)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(options.BlockSizeBytes);
                int filled;
                try
                {
                    filled = await ReadBlockAsync(source, buffer, options.BlockSizeBytes, upload.Token).ConfigureAwait(false);
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    throw;
                }

                if (filled == 0)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    break;
                }

                hash.AppendData(buffer, 0, filled);
                size += filled;
                // Fixed-length ids: the service rejects a blob whose blocks (even abandoned ones) differ in id length.
                var blockId = Convert.ToBase64String(Encoding.ASCII.GetBytes($"{uploadId}{blockIds.Count:D8}"));
                blockIds.Add(blockId);
                inFlight.Add(StageBlockAsync(blob, path, blockId, buffer, filled, upload.Token));
                if (inFlight.Count >= options.MaxConcurrentBlockUploads)
                {
                    var finished = await Task.WhenAny(inFlight).ConfigureAwait(false);
                    inFlight.Remove(finished);
                    await finished.ConfigureAwait(false);
                }

                if (filled < options.BlockSizeBytes) break;
            }

            await Task.WhenAll(inFlight).ConfigureAwait(false);
        }
        catch (Exception failure)
        {
            await upload.CancelAsync().ConfigureAwait(false);
            try
            {
                await Task.WhenAll(inFlight).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Blocks cancelled or failed after the first failure: that first one is reported.
            }

            if (failure is SourceStreamException sourceFailure) ExceptionDispatchInfo.Capture(sourceFailure.InnerException!).Throw();
            throw;
        }

        return (blockIds, size, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    private async Task StageBlockAsync(BlockBlobClient blob, string path, string blockId, byte[] buffer, int length,
        CancellationToken cancellationToken)
    {
        try
        {
            var stage = new BlockBlobStageBlockOptions
            {
                TransferValidation = new UploadTransferValidationOptions { ChecksumAlgorithm = StorageChecksumAlgorithm.MD5 },
            };
            await retry.ExecuteAsync("stage block", path, async ct =>
            {
                using var block = new MemoryStream(buffer, 0, length, writable: false);
                await blob.StageBlockAsync(blockId, block, stage, ct).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<int> ReadBlockAsync(Stream source, byte[] buffer, int blockSize, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < blockSize)
        {
            var read = await source.ReadAsync(buffer.AsMemory(filled, blockSize - filled), cancellationToken).ConfigureAwait(false);
            if (read == 0) break;
            filled += read;
        }

        return filled;
    }

    private async Task<(Stream Stream, BlobInfo Info)> OpenVerifiedAsync(string path, CancellationToken cancellationToken)
    {
        BlobDownloadStreamingResult download;
        try
        {
            download = (await container.GetBlobClient(path).DownloadStreamingAsync(cancellationToken: cancellationToken)
                .ConfigureAwait(false)).Value;
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.BlobNotFound)
        {
            throw new BlobNotFoundException(path, Location);
        }

        try
        {
            var details = download.Details;
            var info = ToInfo(path, details.ContentLength, details.ETag, details.LastModified, details.Metadata);
            return (new ChecksumVerifyingStream(download.Content, path, info.Size, info.Sha256, Location), info);
        }
        catch
        {
            download.Dispose();
            throw;
        }
    }

    private async Task<string?> WrittenByAsync(BlobClient blob, string writeId, CancellationToken cancellationToken)
    {
        try
        {
            var properties = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            return properties.Metadata.TryGetValue(WriteIdKey, out var id) && id == writeId ? properties.ETag.ToString() : null;
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.BlobNotFound)
        {
            return null;
        }
    }

    private BlobInfo ToInfo(string path, long size, ETag etag, DateTimeOffset lastModified, IDictionary<string, string> metadata)
    {
        string? sha256 = null;
        var user = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in metadata)
        {
            var lower = key.ToLowerInvariant();
            if (lower == Sha256Key) sha256 = value;
            else if (!lower.StartsWith(BlobPath.ReservedMetadataPrefix, StringComparison.Ordinal)) user[lower] = value;
        }

        if (sha256 is not { Length: 64 })
        {
            throw new BlobCorruptedException(path,
                $"blob '{path}' in {Location} has no {Sha256Key} metadata: it was not committed by this store, its checksum cannot be verified");
        }

        return new BlobInfo(path, size, sha256, etag.ToString(), lastModified, user);
    }

    private static BlobClientOptions ClientOptions(AzureBlobStoreOptions options, TimeSpan networkTimeout)
    {
        var client = options.ServiceVersion is { } version ? new BlobClientOptions(version) : new BlobClientOptions();
        // Retries are the store's own (bounded, same policy for every back end), not the SDK's.
        client.Retry.MaxRetries = 0;
        client.Retry.NetworkTimeout = networkTimeout;
        return client;
    }

    private static FailureKind Classify(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => FailureKind.PassThrough,
        OperationCanceledException => FailureKind.Transient,
        RequestFailedException { Status: 0 or (int)HttpStatusCode.RequestTimeout or (int)HttpStatusCode.TooManyRequests or >= 500 }
            => FailureKind.Transient,
        RequestFailedException => FailureKind.Permanent,
        AggregateException { InnerExceptions.Count: > 0 } aggregate => Classify(aggregate.InnerExceptions[0], cancellationToken),
        HttpRequestException or IOException or TimeoutException or SocketException => FailureKind.Transient,
        _ => FailureKind.PassThrough,
    };
}
