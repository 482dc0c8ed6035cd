using System.Buffers.Binary;
using System.Net.Sockets;
using System.Numerics;
using System.Runtime.InteropServices;
using RAE.GrainInterfaces;
using RAE.Grains.Workers;

namespace RAE.Grains.Collectives.Ring;

/// <summary>
/// A rank's two ring connections: it sends to its successor and receives from its predecessor. A collective runs on
/// two threads (one per direction), so a rank sends and receives at once; pieces carry a 16-byte header (operation,
/// message index, element count) that both ends check, so ranks out of step fail loudly instead of mixing data.
/// Any failure (the peer closed, no progress within the timeout, <see cref="Break"/>) closes both sockets: the
/// neighbours then fail too, so the whole ring stops and every rank reports a <see cref="CollectiveException"/>.
/// </summary>
internal sealed partial class RingLinks(RingConnection toNext, string next, RingConnection fromPrevious, string previous, TimeSpan timeout) : IDisposable
{
    private const int HeaderBytes = 16;
    private readonly CancellationTokenSource _breaking = new();
    // One thread per direction for the ring's lifetime: starting two threads per collective was most of a small
    // all-reduce (2 ranks in one process, 256 KB: median 1.6-1.8 ms, p90 7.6-9.5 ms; with these threads 0.4-0.6 / 0.5-0.7).
    private readonly DedicatedWorkerThread _sending = new($"rae-ring-send-{next}");
    private readonly DedicatedWorkerThread _receiving = new($"rae-ring-receive-{previous}");
    private readonly byte[] _sendHeader = new byte[HeaderBytes];
    private readonly byte[] _receiveHeader = new byte[HeaderBytes];
    // Operations run one at a time, each on the ring's two threads or on one calling thread: these buffers are never shared.
    private byte[] _sealedSend = [];
    private byte[] _sealedReceive = [];
    private float[] _receiveScratch = [];
    private string? _broken;

    public string? BrokenReason => Volatile.Read(ref _broken);

    /// <summary>Runs one collective's schedule over <paramref name="data"/> (written in place). With
    /// <paramref name="readiness"/>, a piece is sent, and an arriving piece read, only once that part of the local vector
    /// is final.</summary>
    public async Task RunAsync(RingSchedule schedule, float[] data, float divisor, long operation, string what, GradientReadiness? readiness = null)
    {
        if (BrokenReason is { } reason) throw new CollectiveException($"{what}: the ring is broken since an earlier failure: {reason}");
        var progress = new Progress();
        var sender = _sending.InvokeAsync(() => Guard(progress, what, () => SendAll(schedule, data, operation, progress, readiness)));
        var receiver = _receiving.InvokeAsync(() => Guard(progress, what, () => ReceiveAll(schedule, data, divisor, operation, progress, readiness)));
        try
        {
            await Task.WhenAll(sender, receiver).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The communicator was disposed between the broken-ring check and the hand-over to its threads.
            progress.Fail(new CollectiveException($"{what}: {BrokenReason ?? "the ring's threads were stopped"}"));
        }
        if (progress.Failure is { } failure) throw failure;
    }

    /// <summary>Closes both connections; a collective in progress fails with <paramref name="reason"/>.</summary>
    public void Break(string reason)
    {
        Interlocked.CompareExchange(ref _broken, reason, null);
        _breaking.Cancel(); // ends a wait for local gradients too
        toNext.Dispose();
        fromPrevious.Dispose();
    }

    /// <summary>Breaks the ring; its two threads end once the collective they run (if any) has failed.</summary>
    public void Dispose()
    {
        Break("the communicator was disposed");
        _sending.Dispose();
        _receiving.Dispose();
    }

    private void Guard(Progress progress, string what, Action run)
    {
        try
        {
            run();
        }
        catch (Exception error)
        {
            var failure = error as CollectiveException ?? new CollectiveException($"{what}: {Describe(error)}", error);
            if (progress.Fail(failure)) Break(failure.Message);
        }
    }

    private string Describe(Exception error)
    {
        // Once the ring is broken (by the first failure, an abort or disposal), that is the cause of what follows.
        if (BrokenReason is { } reason) return reason;
        // Streams (plain or TLS) report socket failures as IOException around the SocketException.
        var cause = error is IOException { InnerException: SocketException socketError } ? socketError : error;
        return cause switch
        {
            SocketException { SocketErrorCode: SocketError.TimedOut or SocketError.WouldBlock } =>
                $"no progress on the ring for {timeout.TotalSeconds:0.#} s (the collective timeout); {(previous == next ? previous : $"{previous} or {next}")} may be hung",
            EndOfStreamException or SocketException or ObjectDisposedException or IOException =>
                $"a ring connection closed ({error.Message}): {(previous == next ? previous : $"{previous} or {next}")} is gone, failed or saw the group aborted",
            _ => error.Message,
        };
    }

    private void SendAll(RingSchedule schedule, float[] data, long operation, Progress progress, GradientReadiness? readiness)
    {
        var cipher = toNext.Cipher;
        // A sealed frame is built whole (header, ciphertext, tag) and written at once.
        var frame = cipher is null ? _sendHeader : SendFrame(schedule);
        for (var index = 0; index < schedule.Sends.Length; index++)
        {
            var send = schedule.Sends[index];
            readiness?.WaitFor(send.Offset + send.Count, _breaking.Token);
            if (!progress.WaitForReceived(send.AfterReceived)) return;
            var length = BuildFrame(frame, data, send, index, operation, cipher);
            if (cipher is null)
            {
                toNext.Stream.Write(frame, 0, HeaderBytes);
                toNext.Stream.Write(MemoryMarshal.AsBytes(data.AsSpan(send.Offset, send.Count)));
                continue;
            }
            toNext.Stream.Write(frame, 0, length);
        }
    }

    private void ReceiveAll(RingSchedule schedule, float[] data, float divisor, long operation, Progress progress, GradientReadiness? readiness)
    {
        var header = _receiveHeader;
        var cipher = fromPrevious.Cipher;
        var (scratch, sealedFrame) = ReceiveBuffers(schedule, cipher);
        for (var index = 0; index < schedule.Receives.Length; index++)
        {
            var receive = schedule.Receives[index];
            // Before the socket read: the wait for this rank's own backward must not count against the ring's timeout.
            readiness?.WaitFor(receive.Offset + receive.Count, _breaking.Token);
            fromPrevious.Stream.ReadExactly(header);
            CheckHeader(header, operation, index, receive);
            var target = data.AsSpan(receive.Offset, receive.Count);
            var incoming = receive.Arrival == RingArrival.Copy ? target : scratch.AsSpan(0, receive.Count);
            ReadPayload(header, MemoryMarshal.AsBytes(incoming), cipher, sealedFrame);
            Arrive(receive, incoming, target, divisor);
            progress.Received(index + 1);
        }
    }

    /// <summary>Writes the 16-byte header of message <paramref name="index"/> (operation, index, element count) into
    /// <paramref name="frame"/> and, on a sealed connection, the sealed payload and tag after it; returns the frame's
    /// length (the header alone on a plain connection, whose payload is sent straight from <paramref name="data"/>).</summary>
    private static int BuildFrame(byte[] frame, float[] data, RingSend send, int index, long operation, RingFrameCipher? cipher)
    {
        var header = frame.AsSpan(0, HeaderBytes);
        BinaryPrimitives.WriteInt64LittleEndian(header, operation);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], index);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], send.Count);
        if (cipher is null) return HeaderBytes;
        var payload = MemoryMarshal.AsBytes(data.AsSpan(send.Offset, send.Count));
        cipher.Seal(header, payload, frame.AsSpan(HeaderBytes, payload.Length), frame.AsSpan(HeaderBytes + payload.Length, RingFrameCipher.TagBytes));
        return HeaderBytes + payload.Length + RingFrameCipher.TagBytes;
    }

    private void CheckHeader(ReadOnlySpan<byte> header, long operation, int index, RingReceive receive)
    {
        var (op, message, count) = (BinaryPrimitives.ReadInt64LittleEndian(header), BinaryPrimitives.ReadInt32LittleEndian(header[8..]), BinaryPrimitives.ReadInt32LittleEndian(header[12..]));
        if (op != operation || message != index || count != receive.Count)
            throw new CollectiveException($"Ring out of step: {previous} sent operation {op} message {message} ({count} values), this rank expected operation {operation} message {index} ({receive.Count} values); do all ranks call the same collectives with the same lengths?");
    }

    /// <summary>What an arrived piece does to the vector: a copy has already landed in place; a partial sum is added
    /// (then divided, for a mean's last addition).</summary>
    private static void Arrive(RingReceive receive, ReadOnlySpan<float> incoming, Span<float> target, float divisor)
    {
        if (receive.Arrival == RingArrival.Copy) return;
        Add(incoming, target);
        if (receive.Arrival == RingArrival.AddThenDivide) Divide(target, divisor);
    }

    /// <summary>The sealed send frame, kept for the ring's life and grown to the largest piece an operation sends.</summary>
    private byte[] SendFrame(RingSchedule schedule)
    {
        var length = HeaderBytes + 4 * schedule.LargestSend + RingFrameCipher.TagBytes;
        if (_sealedSend.Length < length) _sealedSend = new byte[length];
        return _sealedSend;
    }

    /// <summary>The scratch a partial sum lands in before it is added, and a sealed frame's buffer, kept for the ring's
    /// life (an operation per training step would otherwise allocate them on the large-object heap every step).</summary>
    private (float[] Scratch, byte[] SealedFrame) ReceiveBuffers(RingSchedule schedule, RingFrameCipher? cipher)
    {
        if (_receiveScratch.Length < schedule.LargestReceive) _receiveScratch = new float[schedule.LargestReceive];
        var sealedLength = 4 * schedule.LargestReceive + RingFrameCipher.TagBytes;
        if (cipher is not null && _sealedReceive.Length < sealedLength) _sealedReceive = new byte[sealedLength];
        return (_receiveScratch, _sealedReceive);
    }

    /// <summary>Reads a frame's payload into <paramref name="destination"/>, opening it first on a sealed connection.</summary>
    private void ReadPayload(ReadOnlySpan<byte> header, Span<byte> destination, RingFrameCipher? cipher, byte[] sealedFrame)
    {
        if (cipher is null)
        {
            fromPrevious.Stream.ReadExactly(destination);
            return;
        }
        var frame = sealedFrame.AsSpan(0, destination.Length + RingFrameCipher.TagBytes);
        fromPrevious.Stream.ReadExactly(frame);
        cipher.Open(header, frame[..destination.Length], frame[destination.Length..], destination, previous);
    }

    /// <summary>target[i] = incoming[i] + target[i]; element-wise, so bit-identical to the scalar loop.</summary>
    private static void Add(ReadOnlySpan<float> incoming, Span<float> target)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && target.Length >= Vector<float>.Count)
        {
            var wideIncoming = MemoryMarshal.Cast<float, Vector<float>>(incoming);
            var wideTarget = MemoryMarshal.Cast<float, Vector<float>>(target);
            for (var v = 0; v < wideTarget.Length; v++) wideTarget[v] = wideIncoming[v] + wideTarget[v];
            i = wideTarget.Length * Vector<float>.Count;
        }
        for (; i < target.Length; i++) target[i] = incoming[i] + target[i];
    }

    /// <summary>Division (not multiplication by 1/n), as the scalar definition of a mean.</summary>
    private static void Divide(Span<float> target, float divisor)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && target.Length >= Vector<float>.Count)
        {
            var wide = MemoryMarshal.Cast<float, Vector<float>>(target);
            var wideDivisor = new Vector<float>(divisor);
            for (var v = 0; v < wide.Length; v++) wide[v] /= wideDivisor;
            i = wide.Length * Vector<float>.Count;
        }
        for (; i < target.Length; i++) target[i] /= divisor;
    }

    /// <summary>How many messages the receiving thread has finished, and the first failure of either thread.</summary>
    private sealed class Progress
    {
        private readonly object _gate = new();
        private int _received;

        public CollectiveException? Failure { get; private set; }

        public void Received(int count)
        {
            lock (_gate)
            {
                _received = count;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>False when the other thread failed first (the receiving thread's socket timeout bounds the wait).</summary>
        public bool WaitForReceived(int count)
        {
            lock (_gate)
            {
                while (_received < count && Failure is null) Monitor.Wait(_gate);
                return Failure is null;
            }
        }

        /// <summary>Records the first failure; true for the first.</summary>
        public bool Fail(CollectiveException failure)
        {
            lock (_gate)
            {
                var first = Failure is null;
                Failure ??= failure;
                Monitor.PulseAll(_gate);
                return first;
            }
        }
    }
}
