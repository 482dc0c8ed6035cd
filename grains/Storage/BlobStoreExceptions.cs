namespace RAE.Grains.Storage;

public abstract class BlobStoreException : Exception
{
    protected BlobStoreException(string? blobPath, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        BlobPath = blobPath;
    }

    public string? BlobPath { get; }
}

public sealed class BlobNotFoundException(string blobPath, string location)
    : BlobStoreException(blobPath, $"blob '{blobPath}' does not exist in {location}");

/// <summary>The stored bytes cannot be trusted: damaged framing, missing checksum, or wrong length.</summary>
public class BlobCorruptedException(string blobPath, string message, Exception? innerException = null)
    : BlobStoreException(blobPath, message, innerException);

public sealed class BlobChecksumMismatchException(string blobPath, string expectedSha256, string actualSha256, string location)
    : BlobCorruptedException(blobPath,
        $"blob '{blobPath}' in {location} is corrupted: stored checksum sha256 {expectedSha256}, bytes read hash to {actualSha256}")
{
    public string ExpectedSha256 { get; } = expectedSha256;

    public string ActualSha256 { get; } = actualSha256;
}

/// <summary>A conditional write lost against another writer.</summary>
public sealed class BlobConcurrencyException(string blobPath, string message, Exception? innerException = null)
    : BlobStoreException(blobPath, message, innerException);

/// <summary>The store could not be reached or used (after the bounded retries, if the failure looked transient).</summary>
public sealed class BlobStoreUnavailableException(string? blobPath, string message, int attempts, Exception? innerException = null)
    : BlobStoreException(blobPath, message, innerException)
{
    public int Attempts { get; } = attempts;
}
