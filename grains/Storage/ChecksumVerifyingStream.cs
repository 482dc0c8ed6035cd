using System.Security.Cryptography;

namespace RAE.Grains.Storage;

/// <summary>Read-only wrapper that passes on exactly <c>expectedSize</c> bytes of <c>inner</c>, hashing them, and on
/// reaching the end throws <see cref="BlobChecksumMismatchException"/> (or <see cref="BlobCorruptedException"/> when
/// the inner stream ends early) if the bytes do not match what the store recorded.</summary>
internal sealed class ChecksumVerifyingStream(
    Stream inner, string blobPath, long expectedSize, string expectedSha256, string location) : Stream
{
    private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long bytesRead;
    private bool verified;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => expectedSize;

    public override long Position
    {
        get => bytesRead;
        set => throw new NotSupportedException("blob read streams are forward-only");
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var allowed = Allowed(buffer.Length);
        var read = allowed == 0 ? 0 : inner.Read(buffer[..allowed]);
        return Account(buffer[..read], allowed);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var allowed = Allowed(buffer.Length);
        var read = allowed == 0 ? 0 : await inner.ReadAsync(buffer[..allowed], cancellationToken).ConfigureAwait(false);
        return Account(buffer.Span[..read], allowed);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Allowed(int requested) => (int)Math.Min(requested, expectedSize - bytesRead);

    /// <summary>Verifies as soon as the last byte arrives, so a reader that stops after <see cref="Length"/> bytes
    /// is checked too.</summary>
    private int Account(ReadOnlySpan<byte> chunk, int requested)
    {
        hash.AppendData(chunk);
        bytesRead += chunk.Length;
        if (requested > 0 && chunk.Length == 0)
            throw new BlobCorruptedException(blobPath, $"blob '{blobPath}' in {location} is truncated: {bytesRead} of {expectedSize} bytes");
        if (bytesRead == expectedSize && !verified)
        {
            verified = true;
            var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (!string.Equals(actual, expectedSha256, StringComparison.Ordinal))
                throw new BlobChecksumMismatchException(blobPath, expectedSha256, actual, location);
        }

        return chunk.Length;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("blob read streams are forward-only");
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            hash.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync().ConfigureAwait(false);
        hash.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
