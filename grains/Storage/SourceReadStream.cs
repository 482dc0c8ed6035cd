namespace RAE.Grains.Storage;

/// <summary>Marks a failure of the caller's content stream, so that it is neither retried nor blamed on storage.</summary>
internal sealed class SourceStreamException(Exception inner) : Exception("the content stream failed", inner);

/// <summary>Forward-only view of the caller's content that tags its exceptions as <see cref="SourceStreamException"/>.</summary>
internal sealed class SourceReadStream(Stream source) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        try
        {
            return source.Read(buffer, offset, count);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new SourceStreamException(ex);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new SourceStreamException(ex);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
