using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using RAE.GrainInterfaces;

namespace RAE.Grains.Collectives.Ring;

/// <summary>
/// A collective run to completion on the calling thread (a rank's worker thread between its backward and its update):
/// both sockets turn non-blocking for the operation and one loop sends and receives, waiting in poll(2) only when
/// neither direction can move. Nothing is handed to another thread, so no thread has to be woken: on two vCPUs shared
/// by two ranks each wake-up of a sleeping ring thread cost up to a scheduler tick (~1 ms) per hand-over. The frames,
/// their order and the arithmetic are those of the two-thread path, so the result is the same bits and a peer may use
/// either path for the same operation.
/// </summary>
internal sealed partial class RingLinks
{
    /// <summary>A wait for a socket ends after this long to look at the ring again (broken, timed out).</summary>
    private const int WaitSliceMicroseconds = 50_000;

    public void Run(RingSchedule schedule, float[] data, float divisor, long operation, string what)
    {
        if (BrokenReason is { } reason) throw new CollectiveException($"{what}: the ring is broken since an earlier failure: {reason}");
        try
        {
            SetBlocking(false);
            Pump(schedule, data, divisor, operation);
            SetBlocking(true);
        }
        catch (Exception error)
        {
            var failure = error as CollectiveException ?? new CollectiveException($"{what}: {Describe(error)}", error);
            Break(failure.Message);
            throw failure;
        }
    }

    private void SetBlocking(bool blocking) => toNext.Socket.Blocking = fromPrevious.Socket.Blocking = blocking;

    private void Pump(RingSchedule schedule, float[] data, float divisor, long operation)
    {
        var sendCipher = toNext.Cipher;
        var receiveCipher = fromPrevious.Cipher;
        var sendFrame = sendCipher is null ? _sendHeader : SendFrame(schedule);
        var (scratch, sealedReceive) = ReceiveBuffers(schedule, receiveCipher);
        var (sends, receives) = (schedule.Sends, schedule.Receives);
        int sendIndex = 0, sendPosition = 0, sendLength = -1, receiveIndex = 0, receivePosition = 0;
        var lastProgress = Stopwatch.GetTimestamp();
        while (sendIndex < sends.Length || receiveIndex < receives.Length)
        {
            var progressed = false;
            var sendBlocked = false;
            while (sendIndex < sends.Length)
            {
                var send = sends[sendIndex];
                if (sendLength < 0)
                {
                    // The slice a rank forwards is final once it has received that many messages.
                    if (receiveIndex < send.AfterReceived) break;
                    var frameLength = BuildFrame(sendFrame, data, send, sendIndex, operation, sendCipher);
                    sendLength = sendCipher is null ? HeaderBytes + 4 * send.Count : frameLength;
                    sendPosition = 0;
                }
                ReadOnlySpan<byte> pending = sendCipher is not null || sendPosition < HeaderBytes
                    ? sendFrame.AsSpan(sendPosition, (sendCipher is null ? HeaderBytes : sendLength) - sendPosition)
                    : MemoryMarshal.AsBytes(data.AsSpan(send.Offset, send.Count))[(sendPosition - HeaderBytes)..];
                var sent = toNext.Socket.Send(pending, SocketFlags.None, out var sendError);
                if (sendError == SocketError.WouldBlock)
                {
                    sendBlocked = true;
                    break;
                }
                if (sendError != SocketError.Success) throw new SocketException((int)sendError);
                progressed = true;
                sendPosition += sent;
                if (sendPosition < sendLength) continue;
                sendIndex++;
                sendLength = -1;
            }
            while (receiveIndex < receives.Length)
            {
                var receive = receives[receiveIndex];
                var target = data.AsSpan(receive.Offset, receive.Count);
                var incoming = receive.Arrival == RingArrival.Copy ? target : scratch.AsSpan(0, receive.Count);
                var payloadLength = 4 * receive.Count + (receiveCipher is null ? 0 : RingFrameCipher.TagBytes);
                var pending = receivePosition < HeaderBytes ? _receiveHeader.AsSpan(receivePosition)
                    : receiveCipher is null ? MemoryMarshal.AsBytes(incoming)[(receivePosition - HeaderBytes)..]
                    : sealedReceive.AsSpan(receivePosition - HeaderBytes, payloadLength - (receivePosition - HeaderBytes));
                var received = fromPrevious.Socket.Receive(pending, SocketFlags.None, out var receiveError);
                if (receiveError == SocketError.WouldBlock) break;
                if (receiveError != SocketError.Success) throw new SocketException((int)receiveError);
                if (received == 0) throw new EndOfStreamException("the peer closed the connection");
                progressed = true;
                var wasHeader = receivePosition < HeaderBytes;
                receivePosition += received;
                if (wasHeader && receivePosition == HeaderBytes) CheckHeader(_receiveHeader, operation, receiveIndex, receive);
                if (receivePosition < HeaderBytes + payloadLength) continue;
                if (receiveCipher is not null)
                    receiveCipher.Open(_receiveHeader, sealedReceive.AsSpan(0, 4 * receive.Count), sealedReceive.AsSpan(4 * receive.Count, RingFrameCipher.TagBytes),
                        MemoryMarshal.AsBytes(incoming), previous);
                Arrive(receive, incoming, target, divisor);
                receiveIndex++;
                receivePosition = 0;
            }
            if (progressed)
            {
                lastProgress = Stopwatch.GetTimestamp();
                continue;
            }
            if (Stopwatch.GetElapsedTime(lastProgress) > timeout) throw new SocketException((int)SocketError.TimedOut);
            WaitForSockets(receiveIndex < receives.Length, sendBlocked);
        }
    }

    /// <summary>Blocks until the predecessor's socket has data (<paramref name="read"/>), the successor's has room
    /// (<paramref name="write"/>), or a wait slice passes.</summary>
    private void WaitForSockets(bool read, bool write)
    {
        if (read && write)
        {
            var readable = new List<Socket>(1) { fromPrevious.Socket };
            var writable = new List<Socket>(1) { toNext.Socket };
            Socket.Select(readable, writable, null, WaitSliceMicroseconds);
        }
        else if (read) fromPrevious.Socket.Poll(WaitSliceMicroseconds, SelectMode.SelectRead);
        else if (write) toNext.Socket.Poll(WaitSliceMicroseconds, SelectMode.SelectWrite);
    }
}
