namespace RAE.Cluster.Tests.Storage;

internal static class TestBytes
{
    public static byte[] Deterministic(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}

/// <summary>Raised by <see cref="FailingStream"/>: stands for a writer dying in the middle of an upload.</summary>
internal sealed class SimulatedWriterCrashException(long position)
    : Exception($"simulated crash of the writer after {position} bytes");

/// <summary>Non-seekable source, like a network or pipe stream, so a store cannot cheat by looking at the length.</summary>
internal class ForwardOnlyStream(byte[] data) : Stream
{
    private long position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    protected long Served => position;

    public override int Read(byte[] buffer, int offset, int count)
    {
        BeforeRead();
        var n = (int)Math.Min(count, data.Length - position);
        Array.Copy(data, position, buffer, offset, n);
        position += n;
        return n;
    }

    public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        await BeforeReadAsync(cancellationToken);
        return Read(buffer, offset, count);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await BeforeReadAsync(cancellationToken);
        var n = (int)Math.Min(buffer.Length, data.Length - position);
        data.AsSpan((int)position, n).CopyTo(buffer.Span);
        position += n;
        return n;
    }

    protected virtual void BeforeRead() { }

    protected virtual Task BeforeReadAsync(CancellationToken cancellationToken)
    {
        BeforeRead();
        return Task.CompletedTask;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Serves its bytes until <paramref name="failAfter"/> have gone out, then throws.</summary>
internal sealed class FailingStream(byte[] data, long failAfter) : ForwardOnlyStream(data)
{
    protected override void BeforeRead()
    {
        if (Served >= failAfter) throw new SimulatedWriterCrashException(Served);
    }
}

/// <summary>Serves <paramref name="stallAfter"/> bytes, then calls <paramref name="onStall"/> once and never returns.</summary>
internal sealed class StallingStream(byte[] data, long stallAfter, Action onStall) : ForwardOnlyStream(data)
{
    protected override async Task BeforeReadAsync(CancellationToken cancellationToken)
    {
        if (Served < stallAfter) return;
        onStall();
        await Task.Delay(Timeout.Infinite, cancellationToken);
    }

    protected override void BeforeRead()
    {
        if (Served < stallAfter) return;
        onStall();
        Thread.Sleep(Timeout.Infinite);
    }
}
