using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RAE.GrainInterfaces;

namespace RAE.Grains.Collectives.Ring;

/// <summary>
/// Bandwidth-optimal collectives over direct TCP connections between the ranks (reduce-scatter + all-gather): each
/// rank sends and receives 2(n-1)/n of the vector whatever the world size. Orleans does the rest: the rank listens on
/// an ephemeral port of its silo's advertised address from construction, registers it with the collective group
/// grain at its first operation (the rendezvous returns every rank's endpoint and the group's random token), connects
/// to its successor and accepts its predecessor. The group grain's abort (the coordinator abandoning the group) closes
/// the connections at once, and any broken connection or a ring without progress for the group's timeout fails the
/// operation with a <see cref="CollectiveException"/>: the coordinator treats that as a rank failure and re-forms.
/// With <see cref="RingTls"/> (the silo runs cluster TLS) both connections are mutual TLS with the cluster certificates.
/// Operations run one at a time, in the same order on every rank. The ring is not restarted after a failure: the
/// group is re-formed with a new generation and new communicators.
/// </summary>
public sealed class RingCollectiveCommunicator : ICollectiveCommunicator
{
    /// <summary>8 MiB buckets (2 Mi floats) in gradient order: a bucket is a unit a later backward-overlap could hand over as ready.</summary>
    public const int DefaultBucketElements = 2 * 1024 * 1024;

    /// <summary>
    /// 256 KiB pieces: a rank forwards a piece as soon as it has it, so links stay busy through a ring step, and a piece
    /// received and added stays in cache. `rae bench cluster` between two silo processes, 196.5 M elements, this 2-core
    /// machine shared by other jobs (load average 45), median (best) MB/s: 8 MiB buckets with 256 KiB / 1 MiB / 4 MiB
    /// pieces: 922 (1007) / 642 (658) / 181 (394); 32 MiB buckets: 629 (1391) / 450 (611) / 491 (503).
    /// </summary>
    public const int DefaultPieceElements = 64 * 1024;

    private static readonly TimeSpan AbortPollInterval = TimeSpan.FromSeconds(30);

    private readonly ICollectiveGroupGrain _group;
    private readonly RingTls? _tls;
    private readonly string _groupKey;
    private readonly Socket? _listener;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _disposed = new();
    private Task<RingLinks>? _links;
    private long _nextOperation;
    private int _busy;

    public RingCollectiveCommunicator(IGrainFactory grainFactory, string groupKey, int rank, int worldSize, IPAddress listenAddress,
        ILogger? logger = null, int bucketElements = DefaultBucketElements, int pieceElements = DefaultPieceElements, RingTls? tls = null)
    {
        ArgumentNullException.ThrowIfNull(grainFactory);
        ArgumentNullException.ThrowIfNull(listenAddress);
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "A group needs at least one rank.");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank must be in 0..{worldSize - 1}.");
        if (bucketElements < 1) throw new ArgumentOutOfRangeException(nameof(bucketElements), bucketElements, "Buckets need at least one element.");
        if (pieceElements < 1) throw new ArgumentOutOfRangeException(nameof(pieceElements), pieceElements, "Pieces need at least one element.");
        _group = grainFactory.GetGrain<ICollectiveGroupGrain>(groupKey);
        _groupKey = groupKey;
        _tls = tls;
        _logger = logger ?? NullLogger.Instance;
        Rank = rank;
        WorldSize = worldSize;
        BucketElements = bucketElements;
        PieceElements = pieceElements;
        if (worldSize == 1) return;
        _listener = new Socket(listenAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(listenAddress, 0));
        _listener.Listen(16);
        var local = (IPEndPoint)_listener.LocalEndPoint!;
        LocalEndpoint = new RingEndpoint(local.Address.ToString(), local.Port);
    }

    public int Rank { get; }
    public int WorldSize { get; }
    public int BucketElements { get; }
    public int PieceElements { get; }

    /// <summary>Where this rank waits for its predecessor (null for a group of one rank, which never connects).</summary>
    public RingEndpoint? LocalEndpoint { get; }

    public async Task<float[]> AllReduceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var result = (float[])data.Clone();
        await AllReduceInPlaceAsync(result, reduce, cancellationToken);
        return result;
    }

    public Task AllReduceInPlaceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        return RunAsync($"all-reduce ({reduce}) of {data.Length} values", cancellationToken, operation =>
            RingSchedule.AllReduce(data.Length, Rank, WorldSize, BucketElements, PieceElements, reduce == ReduceOperation.Mean), data, WorldSize);
    }

    /// <summary>The same operation on the calling thread (<see cref="RingLinks.Run"/>): one loop sends and receives, so
    /// no ring thread has to be woken; the frames and the result are those of the asynchronous path.</summary>
    public void AllReduceInPlace(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var operation = BeginOperation(cancellationToken);
        try
        {
            if (WorldSize == 1) return;
            var links = (_links ??= ConnectAsync()).GetAwaiter().GetResult();
            links.Run(RingSchedule.AllReduce(data.Length, Rank, WorldSize, BucketElements, PieceElements, reduce == ReduceOperation.Mean), data, WorldSize, operation,
                $"Group '{_groupKey}' rank {Rank}/{WorldSize} all-reduce ({reduce}) of {data.Length} values (operation {operation})");
        }
        finally
        {
            EndOperation();
        }
    }

    /// <summary>Each piece leaves (and each arriving piece is added) once <paramref name="readiness"/> covers it, so the
    /// buckets of the last layers travel while backward still runs; the schedule, hence every bit of the result, is the
    /// one of <see cref="AllReduceInPlaceAsync(float[], ReduceOperation, CancellationToken)"/>.</summary>
    public async Task AllReduceInPlaceAsync(float[] data, GradientReadiness readiness, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(readiness);
        if (readiness.Length != data.Length)
            throw new ArgumentException($"The readiness covers {readiness.Length} values, the vector has {data.Length}.", nameof(readiness));
        // One rank: the vector is already the result, once it is finished.
        if (WorldSize == 1) await readiness.WhenComplete.WaitAsync(cancellationToken).ConfigureAwait(false);
        await RunAsync($"all-reduce ({reduce}) of {data.Length} values, overlapped with backward", cancellationToken, operation =>
            RingSchedule.AllReduce(data.Length, Rank, WorldSize, BucketElements, PieceElements, reduce == ReduceOperation.Mean), data, WorldSize,
            readiness).ConfigureAwait(false);
    }

    public async Task<float[]> BroadcastAsync(float[]? data, int length, int root, CancellationToken cancellationToken = default)
    {
        if (root < 0 || root >= WorldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"Broadcast root must be a rank of the group (0..{WorldSize - 1}).");
        if (Rank == root && (data is null || data.Length != length))
            throw new ArgumentException($"Broadcast root {root} must pass a vector of {length} elements.", nameof(data));
        var result = Rank == root ? (float[])data!.Clone() : new float[length];
        await RunAsync($"broadcast of {length} values from rank {root}", cancellationToken,
            _ => RingSchedule.Broadcast(length, Rank, WorldSize, root, PieceElements), result, 1);
        return result;
    }

    /// <summary>An all-reduce of one value per rank: no rank finishes it before every rank has started it.</summary>
    public Task BarrierAsync(CancellationToken cancellationToken = default) =>
        RunAsync("barrier", cancellationToken, _ => RingSchedule.AllReduce(WorldSize, Rank, WorldSize, BucketElements, PieceElements, mean: false),
            new float[WorldSize], 1);

    public void Dispose()
    {
        if (_disposed.IsCancellationRequested) return;
        _disposed.Cancel();
        _listener?.Dispose();
        if (_links is { IsCompletedSuccessfully: true } links) links.Result.Dispose();
    }

    /// <summary>Claims the communicator for one operation and numbers it; every rank numbers its operations alike.
    /// <see cref="EndOperation"/> releases it.</summary>
    private long BeginOperation(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.Exchange(ref _busy, 1) == 1)
            throw new InvalidOperationException("A ring communicator runs one collective at a time; every rank calls them in the same order.");
        return _nextOperation++;
    }

    private void EndOperation() => Volatile.Write(ref _busy, 0);

    private async Task RunAsync(string what, CancellationToken cancellationToken, Func<long, RingSchedule> schedule, float[] data, float divisor,
        GradientReadiness? readiness = null)
    {
        var operation = BeginOperation(cancellationToken);
        try
        {
            if (WorldSize == 1) return; // the vector already is the result (a mean of one is the value itself)
            var links = await (_links ??= ConnectAsync());
            await links.RunAsync(schedule(operation), data, divisor, operation, $"Group '{_groupKey}' rank {Rank}/{WorldSize} {what} (operation {operation})", readiness);
        }
        finally
        {
            EndOperation();
        }
    }

    private async Task<RingLinks> ConnectAsync()
    {
        var rendezvous = await _group.JoinRing(Rank, LocalEndpoint!);
        if (rendezvous.Endpoints.Count != WorldSize)
            throw new CollectiveException($"Group '{_groupKey}' has {rendezvous.Endpoints.Count} ring endpoints; this rank expected {WorldSize}.");
        var nextRank = (Rank + 1) % WorldSize;
        var previousRank = (Rank + WorldSize - 1) % WorldSize;
        var next = rendezvous.Endpoints[nextRank];
        var previous = rendezvous.Endpoints[previousRank];
        var nextName = $"rank {nextRank} ({next.Host}:{next.Port})";
        var previousName = $"rank {previousRank} ({previous.Host}:{previous.Port})";
        var accept = Task.Factory.StartNew(
            () => RingHandshake.AcceptPredecessor(_listener!, new RingHello(_groupKey, rendezvous.Token, previousRank, WorldSize), rendezvous.Timeout, previousName, _tls),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        RingConnection? toNext = null;
        try
        {
            toNext = await Task.Factory.StartNew(
                () => RingHandshake.Connect(next, new RingHello(_groupKey, rendezvous.Token, Rank, WorldSize), rendezvous.Timeout, nextName, _tls),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            var fromPrevious = await accept;
            foreach (var socket in new[] { toNext.Socket, fromPrevious.Socket })
                socket.ReceiveTimeout = socket.SendTimeout = RingHandshake.Milliseconds(rendezvous.Timeout);
            // Nobody else may connect once the ring is formed: a stray peer now finds the port closed.
            _listener!.Dispose();
            var links = new RingLinks(toNext, nextName, fromPrevious, previousName, rendezvous.Timeout);
            if (_disposed.IsCancellationRequested)
            {
                links.Dispose();
                throw new ObjectDisposedException(nameof(RingCollectiveCommunicator), "The communicator was disposed while its ring was forming.");
            }
            WatchForAbort(links);
            _logger.LogInformation("Ring of group {Group}: rank {Rank}/{World} sends to {Next} and receives from {Previous} ({Security})", _groupKey, Rank, WorldSize,
                nextName, previousName, _tls is null ? "token-authenticated TCP" : "mutual TLS");
            return links;
        }
        catch
        {
            toNext?.Dispose();
            _listener!.Dispose(); // ends a pending accept
            throw;
        }
    }

    /// <summary>Long-polls the group grain; an abort closes the connections, so a blocked operation fails at once.</summary>
    private void WatchForAbort(RingLinks links) => _ = Task.Run(async () =>
    {
        var token = _disposed.Token;
        while (!token.IsCancellationRequested && links.BrokenReason is null)
        {
            try
            {
                if (await _group.WaitForAbort(AbortPollInterval) is { } reason)
                {
                    links.Break($"group '{_groupKey}' was aborted: {reason}");
                    return;
                }
            }
            catch (Exception error) when (error is not OperationCanceledException)
            {
                // The group grain may be unreachable for a moment; the connections' own timeout still bounds every operation.
                _logger.LogDebug(error, "Abort watch of ring group {Group} failed; retrying", _groupKey);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    });
}
