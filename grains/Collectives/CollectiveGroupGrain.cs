using System.Numerics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives.Ring;

namespace RAE.Grains.Collectives;

/// <summary>
/// Rendezvous of one group generation. Reentrant: calls from all ranks wait here at once. Each (operation, chunk) pair
/// gets a slot that collects one contribution per rank; the last arrival reduces them in rank order (0, 1, 2, ...) so
/// the sum is the same bit for bit whatever order the ranks came in, and releases every waiting rank.
/// </summary>
[Reentrant]
public sealed class CollectiveGroupGrain(ILogger<CollectiveGroupGrain> logger) : Grain, ICollectiveGroupGrain
{
    private readonly Dictionary<(long Operation, int Chunk), Slot> _slots = [];
    private int _worldSize;
    private TimeSpan _timeout = TimeSpan.FromSeconds(30);
    private string? _abortReason;
    private GroupRendezvous? _rendezvous;

    private GroupRendezvous Transports => _rendezvous ??= new GroupRendezvous(this.GetPrimaryKeyString());

    public Task Configure(int worldSize, TimeSpan timeout)
    {
        if (worldSize < 1)
            throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, $"Group '{this.GetPrimaryKeyString()}' needs at least one rank.");
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The collective timeout must be positive.");
        if (_worldSize != 0 && _worldSize != worldSize)
            throw new CollectiveException($"Group '{this.GetPrimaryKeyString()}' already has {_worldSize} ranks; it cannot be re-configured to {worldSize}.");
        _worldSize = worldSize;
        _timeout = timeout;
        return Task.CompletedTask;
    }

    public Task<FloatChunk> AllReduceChunk(long operation, int rank, int chunkIndex, FloatChunk chunk, ReduceOperation reduce) =>
        Rendezvous(operation, rank, chunkIndex, $"all-reduce ({reduce})", chunk, contributions => Reduce(contributions, reduce))!;

    public Task<FloatChunk> BroadcastChunk(long operation, int rank, int root, int chunkIndex, FloatChunk? chunk)
    {
        if (root < 0 || root >= _worldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"Broadcast root must be a rank of group '{this.GetPrimaryKeyString()}' (0..{_worldSize - 1}).");
        if ((rank == root) != (chunk is not null))
            throw new ArgumentException($"Broadcast {operation}: only the root ({root}) passes data; rank {rank} {(chunk is null ? "passed none" : "passed some")}.", nameof(chunk));
        return Rendezvous(operation, rank, chunkIndex, $"broadcast from {root}", chunk, contributions => Copy(contributions[root]!))!;
    }

    public Task Barrier(long operation, int rank) => Rendezvous(operation, rank, 0, "barrier", null, _ => null);

    public Task Abort(string reason)
    {
        _abortReason = reason;
        foreach (var slot in _slots.Values)
            slot.Done.TrySetException(new CollectiveException($"Group '{this.GetPrimaryKeyString()}' was aborted: {reason}"));
        _slots.Clear();
        Transports.Abort(reason);
        return Task.CompletedTask;
    }

    public Task<RingRendezvous> JoinRing(int rank, RingEndpoint endpoint)
    {
        CheckUsable(rank);
        return Transports.JoinRing(rank, _worldSize, endpoint, _timeout);
    }

    public Task<string?> WaitForAbort(TimeSpan maxWait) =>
        _abortReason is not null ? Task.FromResult<string?>(_abortReason) : Transports.WaitForAbort(maxWait);

    public Task<byte[]> ExchangeNcclId(int rank, byte[]? uniqueId)
    {
        CheckUsable(rank);
        return Transports.ExchangeNcclId(rank, uniqueId, _timeout);
    }

    private void CheckUsable(int rank)
    {
        var group = this.GetPrimaryKeyString();
        if (_abortReason is not null)
            throw new CollectiveException($"Group '{group}' was aborted: {_abortReason}");
        if (_worldSize == 0)
            throw new CollectiveException($"Group '{group}' was never configured; the coordinator forms the group before ranks use it.");
        if (rank < 0 || rank >= _worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank must be in 0..{_worldSize - 1} for group '{group}'.");
    }

    /// <summary>
    /// Collects one contribution per rank; the last arrival combines them into one result chunk that every rank gets
    /// (one holder per rank: a remote rank's copy is released when it is serialized, a local rank releases its own).
    /// </summary>
    private async Task<FloatChunk?> Rendezvous(long operation, int rank, int chunkIndex, string kind, FloatChunk? contribution, Func<FloatChunk?[], FloatChunk?> combine)
    {
        var group = this.GetPrimaryKeyString();
        CheckUsable(rank);

        var key = (operation, chunkIndex);
        if (!_slots.TryGetValue(key, out var slot))
        {
            slot = new Slot(kind, _worldSize);
            _slots[key] = slot;
        }
        if (slot.Kind != kind)
            throw new CollectiveException($"Group '{group}' operation {operation}: rank {rank} called {kind} while other ranks called {slot.Kind}; the ranks are out of step.");
        if (slot.Arrived[rank])
            throw new CollectiveException($"Group '{group}' operation {operation} chunk {chunkIndex}: rank {rank} contributed twice.");
        slot.Arrived[rank] = true;
        slot.Contributions[rank] = contribution;
        if (++slot.ArrivedCount == _worldSize)
        {
            try
            {
                slot.Done.TrySetResult(combine(slot.Contributions));
            }
            catch (Exception error)
            {
                slot.Done.TrySetException(error);
            }
            foreach (var received in slot.Contributions) received?.Release();
            Array.Clear(slot.Contributions);
        }

        try
        {
            return await slot.Done.Task.WaitAsync(_timeout);
        }
        catch (TimeoutException)
        {
            var missing = Enumerable.Range(0, _worldSize).Where(r => !slot.Arrived[r]).ToList();
            var message = $"Group '{group}' {kind} operation {operation} chunk {chunkIndex}: rank(s) {string.Join(", ", missing)} did not arrive within {_timeout.TotalSeconds:0.#} s; their silo may be gone.";
            logger.LogWarning("{Message}", message);
            slot.Done.TrySetException(new CollectiveException(message));
            _slots.Remove(key);
            throw new CollectiveException(message);
        }
        finally
        {
            if (++slot.Returned == _worldSize)
                _slots.Remove(key);
        }
    }

    private FloatChunk Reduce(FloatChunk?[] contributions, ReduceOperation reduce)
    {
        var length = contributions[0]!.Length;
        for (var rank = 0; rank < contributions.Length; rank++)
        {
            if (contributions[rank]!.Length != length)
                throw new CollectiveException($"Group '{this.GetPrimaryKeyString()}': rank {rank} sent {contributions[rank]!.Length} values, rank 0 sent {length} (chunks of equal length expected).");
        }
        var reduced = FloatChunk.Rent(length, holders: contributions.Length);
        var result = reduced.WritableValues;
        if (contributions.Length == 1) contributions[0]!.Values.CopyTo(result);
        else Add(contributions[0]!.Values, contributions[1]!.Values, result);
        for (var rank = 2; rank < contributions.Length; rank++) Add(result, contributions[rank]!.Values, result);
        if (reduce == ReduceOperation.Mean && contributions.Length > 1)
        {
            // Division (not multiplication by 1/n) keeps the result identical to the scalar definition.
            float count = contributions.Length;
            for (var i = 0; i < result.Length; i++) result[i] /= count;
        }
        return reduced;
    }

    private FloatChunk Copy(FloatChunk root)
    {
        // The root's chunk may view the root's own vector, which it may change once its call returns: hand out a copy.
        var copy = FloatChunk.Rent(root.Length, holders: _worldSize);
        root.Values.CopyTo(copy.WritableValues);
        return copy;
    }

    /// <summary>target[i] = left[i] + right[i], SIMD-wide; element-wise, so bit-identical to the scalar loop (target may be left).</summary>
    private static void Add(ReadOnlySpan<float> left, ReadOnlySpan<float> right, Span<float> target)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && target.Length >= Vector<float>.Count)
        {
            var wideLeft = MemoryMarshal.Cast<float, Vector<float>>(left);
            var wideRight = MemoryMarshal.Cast<float, Vector<float>>(right);
            var wideTarget = MemoryMarshal.Cast<float, Vector<float>>(target);
            for (var v = 0; v < wideTarget.Length; v++) wideTarget[v] = wideLeft[v] + wideRight[v];
            i = wideTarget.Length * Vector<float>.Count;
        }
        for (; i < target.Length; i++) target[i] = left[i] + right[i];
    }

    private sealed class Slot(string kind, int worldSize)
    {
        public string Kind { get; } = kind;
        public FloatChunk?[] Contributions { get; } = new FloatChunk?[worldSize];
        public bool[] Arrived { get; } = new bool[worldSize];
        public int ArrivedCount { get; set; }
        public int Returned { get; set; }
        public TaskCompletionSource<FloatChunk?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
