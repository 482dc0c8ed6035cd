using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Text;
using RAE.GrainInterfaces;

namespace RAE.Grains.Collectives.Ring;

/// <summary>What a rank presents when it connects to its ring successor: the group key ("{jobId}/g{generation}"), the
/// group's random token from the collective grain, its own rank and the world size.</summary>
public sealed record RingHello(string Group, byte[] Token, int Rank, int WorldSize);

/// <summary>A ring connection: the socket and the stream that carries its bytes (the socket itself, or TLS over it).</summary>
public sealed class RingConnection : IDisposable
{
    private readonly Stream? _handshake;

    public RingConnection(Socket socket, Stream stream) => (Socket, Stream) = (socket, stream);

    /// <summary>A TLS connection whose data frames travel sealed on the bare socket (<see cref="RingFrameCipher"/>);
    /// <paramref name="handshake"/> is the TLS stream the keys were agreed in, kept only to be disposed.</summary>
    internal RingConnection(Socket socket, Stream stream, RingFrameCipher cipher, Stream handshake) : this(socket, stream) =>
        (Cipher, _handshake) = (cipher, handshake);

    public Socket Socket { get; }

    /// <summary>Where data frames are written and read (the socket itself when <see cref="Cipher"/> seals them).</summary>
    public Stream Stream { get; }

    /// <summary>Seals this connection's data frames; null on a plain (token-authenticated) ring.</summary>
    public RingFrameCipher? Cipher { get; }

    /// <summary>Closes the socket first, so a transfer blocked on another thread fails at once, then the streams.</summary>
    public void Dispose()
    {
        Socket.Dispose();
        Stream.Dispose();
        _handshake?.Dispose();
        Cipher?.Dispose();
    }
}

/// <summary>
/// The opening exchange of a ring connection. With <see cref="RingTls"/> the mutual TLS handshake comes first and the
/// exchange runs inside it; a peer whose certificate the authority did not issue is refused there. The connecting rank sends "RAERING1", the 16-byte token, its rank, the
/// world size and the UTF-8 group key; the listening rank answers one byte (1: accepted) or 0 followed by the reason.
/// A connection of another job, of a stale generation (whose group key or token differs), or from a rank that is not
/// the listener's predecessor is refused and closed; the listener keeps waiting for its real predecessor.
/// </summary>
public static class RingHandshake
{
    private const int MaxGroupKeyBytes = 1024;
    private const int MaxReasonBytes = 4096;
    private static readonly TimeSpan PollSlice = TimeSpan.FromSeconds(1);
    private static ReadOnlySpan<byte> Magic => "RAERING1"u8;

    /// <summary>Connects to <paramref name="endpoint"/>, presents <paramref name="hello"/> and returns the accepted socket;
    /// a refusal or a silent listener is a <see cref="CollectiveException"/> that names the peer and the reason.</summary>
    public static RingConnection Connect(RingEndpoint endpoint, RingHello hello, TimeSpan timeout, string peer, RingTls? tls = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            socket.ReceiveTimeout = socket.SendTimeout = Milliseconds(timeout);
            var connect = socket.ConnectAsync(endpoint.Host, endpoint.Port);
            if (!connect.Wait(timeout))
                throw new CollectiveException($"Ring: {peer} at {endpoint.Host}:{endpoint.Port} did not accept a connection within {timeout.TotalSeconds:0.#} s.");
            stream = tls is null ? new NetworkStream(socket, ownsSocket: true) : tls.AuthenticateAsClient(socket, timeout);
            var refusal = Offer(stream, hello);
            if (refusal is null) return tls is null ? new RingConnection(socket, stream) : SealedConnection(socket, stream, hello.Group, connector: true);
            throw new CollectiveException($"Ring: {peer} at {endpoint.Host}:{endpoint.Port} refused the connection: {refusal}");
        }
        catch (Exception error) when (error is SocketException or EndOfStreamException or AggregateException or IOException or AuthenticationException)
        {
            stream?.Dispose();
            socket.Dispose();
            // Under TLS 1.3 a peer that refuses this rank's certificate does so after the client's handshake: the hello then meets a closed connection.
            var hint = tls is null || error is AuthenticationException ? "" : " (over TLS: the peer closes the connection when it refuses this rank's certificate)";
            throw new CollectiveException($"Ring: could not connect to {peer} at {endpoint.Host}:{endpoint.Port}: {(error as AggregateException)?.InnerException?.Message ?? error.Message}{hint}", error);
        }
        catch
        {
            stream?.Dispose();
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Presents <paramref name="hello"/> on a connected socket: null when the listener accepted it, else its reason.</summary>
    public static string? Offer(Stream stream, RingHello hello)
    {
        Write(stream, hello);
        Span<byte> answer = stackalloc byte[1];
        stream.ReadExactly(answer);
        return answer[0] == 1 ? null : ReadString(stream, MaxReasonBytes);
    }

    /// <summary>
    /// Accepts connections on <paramref name="listener"/> until the one from <paramref name="expected"/>'s rank arrives with
    /// the right group and token; every other one is refused with its reason. Fails after <paramref name="timeout"/>.
    /// </summary>
    public static RingConnection AcceptPredecessor(Socket listener, RingHello expected, TimeSpan timeout, string peer, RingTls? tls = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        var refusals = new List<string>();
        while (true)
        {
            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                var refused = refusals.Count == 0 ? "" : $" (refused meanwhile: {string.Join("; ", refusals)})";
                throw new CollectiveException($"Ring: {peer} did not connect within {timeout.TotalSeconds:0.#} s{refused}; its silo may be gone.");
            }
            // Polled in slices: Socket.Poll takes at most int.MaxValue microseconds.
            if (!listener.Poll(remaining < PollSlice ? remaining : PollSlice, SelectMode.SelectRead)) continue;
            var candidate = listener.Accept();
            Stream? stream = null;
            try
            {
                candidate.NoDelay = true;
                var handshakeTimeout = TimeSpan.FromSeconds(Math.Clamp(remaining.TotalSeconds, 0.1, 10));
                candidate.ReceiveTimeout = candidate.SendTimeout = Milliseconds(handshakeTimeout);
                stream = tls is null ? new NetworkStream(candidate, ownsSocket: true) : tls.AuthenticateAsServer(candidate, handshakeTimeout);
                var reason = Check(Read(stream), expected);
                if (reason is null)
                {
                    stream.Write([1]);
                    return tls is null ? new RingConnection(candidate, stream) : SealedConnection(candidate, stream, expected.Group, connector: false);
                }
                refusals.Add(reason);
                Refuse(stream, reason);
            }
            catch (Exception error) when (error is SocketException or EndOfStreamException or InvalidDataException or IOException or AuthenticationException)
            {
                refusals.Add(error.Message);
            }
            stream?.Dispose();
            candidate.Dispose();
        }
    }

    /// <summary>
    /// Agrees the frame key inside the admitted TLS connection, then hands the bare socket over for data. The order makes
    /// sure no TLS reader can read ahead into data: the acceptor sends its share only after reading the connector's,
    /// and the connector sends data only after reading the acceptor's share (data flows connector → acceptor only).
    /// </summary>
    private static RingConnection SealedConnection(Socket socket, Stream tls, string group, bool connector)
    {
        var mine = RandomNumberGenerator.GetBytes(RingFrameCipher.ShareBytes);
        var theirs = new byte[RingFrameCipher.ShareBytes];
        if (connector)
        {
            tls.Write(mine);
            tls.ReadExactly(theirs);
        }
        else
        {
            tls.ReadExactly(theirs);
            tls.Write(mine);
        }
        var cipher = connector ? RingFrameCipher.Derive(mine, theirs, group) : RingFrameCipher.Derive(theirs, mine, group);
        CryptographicOperations.ZeroMemory(mine);
        CryptographicOperations.ZeroMemory(theirs);
        return new RingConnection(socket, new NetworkStream(socket, ownsSocket: false), cipher, tls);
    }

    /// <summary>Why <paramref name="hello"/> is not the connection this listener waits for, or null when it is.</summary>
    public static string? Check(RingHello hello, RingHello expected)
    {
        if (hello.Group != expected.Group)
            return $"the connection belongs to group '{hello.Group}', this ring is group '{expected.Group}' (another job or a stale generation)";
        if (!CryptographicOperations.FixedTimeEquals(hello.Token, expected.Token))
            return $"the connection's group token does not match group '{expected.Group}' (a stale or stray peer)";
        if (hello.WorldSize != expected.WorldSize)
            return $"the connection expects {hello.WorldSize} ranks, the group has {expected.WorldSize}";
        if (hello.Rank != expected.Rank)
            return $"rank {hello.Rank} is not this rank's ring predecessor (rank {expected.Rank})";
        return null;
    }

    public static void Write(Stream stream, RingHello hello)
    {
        var group = Encoding.UTF8.GetBytes(hello.Group);
        if (group.Length > MaxGroupKeyBytes) throw new ArgumentException($"Group key of {group.Length} bytes exceeds {MaxGroupKeyBytes}.", nameof(hello));
        if (hello.Token.Length != 16) throw new ArgumentException($"A ring token has 16 bytes, got {hello.Token.Length}.", nameof(hello));
        var message = new byte[Magic.Length + 16 + 12 + group.Length];
        Magic.CopyTo(message);
        hello.Token.CopyTo(message, Magic.Length);
        var numbers = message.AsSpan(Magic.Length + 16);
        BinaryPrimitives.WriteInt32LittleEndian(numbers, hello.Rank);
        BinaryPrimitives.WriteInt32LittleEndian(numbers[4..], hello.WorldSize);
        BinaryPrimitives.WriteInt32LittleEndian(numbers[8..], group.Length);
        group.CopyTo(numbers[12..]);
        stream.Write(message);
    }

    private static RingHello Read(Stream stream)
    {
        Span<byte> head = stackalloc byte[Magic.Length + 16 + 12];
        stream.ReadExactly(head);
        if (!head[..Magic.Length].SequenceEqual(Magic)) throw new InvalidDataException("a connection that is not a RAE ring peer was closed");
        var token = head.Slice(Magic.Length, 16).ToArray();
        var numbers = head[(Magic.Length + 16)..];
        var rank = BinaryPrimitives.ReadInt32LittleEndian(numbers);
        var world = BinaryPrimitives.ReadInt32LittleEndian(numbers[4..]);
        var groupBytes = BinaryPrimitives.ReadInt32LittleEndian(numbers[8..]);
        if (groupBytes is < 0 or > MaxGroupKeyBytes) throw new InvalidDataException($"a ring hello announced a group key of {groupBytes} bytes");
        var group = new byte[groupBytes];
        stream.ReadExactly(group);
        return new RingHello(Encoding.UTF8.GetString(group), token, rank, world);
    }

    private static void Refuse(Stream stream, string reason)
    {
        var text = Encoding.UTF8.GetBytes(reason);
        var message = new byte[5 + text.Length];
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(1), text.Length);
        text.CopyTo(message, 5);
        stream.Write(message);
    }

    private static string ReadString(Stream stream, int limit)
    {
        Span<byte> length = stackalloc byte[4];
        stream.ReadExactly(length);
        var count = Math.Clamp(BinaryPrimitives.ReadInt32LittleEndian(length), 0, limit);
        var text = new byte[count];
        stream.ReadExactly(text);
        return Encoding.UTF8.GetString(text);
    }

    internal static int Milliseconds(TimeSpan timeout) => (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
}
