using System.Numerics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;

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

    public Task<byte[]> AllReduceChunk(long operation, int rank, int chunkIndex, byte[] chunk, ReduceOperation reduce) =>
        Rendezvous(operation, rank, chunkIndex, $"all-reduce ({reduce})", chunk, contributions => Reduce(contributions, reduce));

    public Task<byte[]> BroadcastChunk(long operation, int rank, int root, int chunkIndex, byte[]? chunk)
    {
        if (root < 0 || root >= _worldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"Broadcast root must be a rank of group '{this.GetPrimaryKeyString()}' (0..{_worldSize - 1}).");
        if ((rank == root) != (chunk is not null))
            throw new ArgumentException($"Broadcast {operation}: only the root ({root}) passes data; rank {rank} {(chunk is null ? "passed none" : "passed some")}.", nameof(chunk));
        return Rendezvous(operation, rank, chunkIndex, $"broadcast from {root}", chunk ?? [], contributions => contributions[root]!);
    }

    public Task Barrier(long operation, int rank) => Rendezvous(operation, rank, 0, "barrier", [], _ => []);

    public Task Abort(string reason)
    {
        _abortReason = reason;
        foreach (var slot in _slots.Values)
            slot.Done.TrySetException(new CollectiveException($"Group '{this.GetPrimaryKeyString()}' was aborted: {reason}"));
        _slots.Clear();
        return Task.CompletedTask;
    }

    private async Task<byte[]> Rendezvous(long operation, int rank, int chunkIndex, string kind, byte[] contribution, Func<byte[]?[], byte[]> combine)
    {
        var group = this.GetPrimaryKeyString();
        if (_abortReason is not null)
            throw new CollectiveException($"Group '{group}' was aborted: {_abortReason}");
        if (_worldSize == 0)
            throw new CollectiveException($"Group '{group}' was never configured; the coordinator forms the group before ranks use it.");
        if (rank < 0 || rank >= _worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank must be in 0..{_worldSize - 1} for group '{group}'.");

        var key = (operation, chunkIndex);
        if (!_slots.TryGetValue(key, out var slot))
        {
            slot = new Slot(kind, _worldSize);
            _slots[key] = slot;
        }
        if (slot.Kind != kind)
            throw new CollectiveException($"Group '{group}' operation {operation}: rank {rank} called {kind} while other ranks called {slot.Kind}; the ranks are out of step.");
        if (slot.Contributions[rank] is not null)
            throw new CollectiveException($"Group '{group}' operation {operation} chunk {chunkIndex}: rank {rank} contributed twice.");
        slot.Contributions[rank] = contribution;
        if (++slot.Arrived == _worldSize)
        {
            try
            {
                slot.Done.TrySetResult(combine(slot.Contributions));
            }
            catch (Exception error)
            {
                slot.Done.TrySetException(error);
            }
            Array.Clear(slot.Contributions);
        }

        try
        {
            return await slot.Done.Task.WaitAsync(_timeout);
        }
        catch (TimeoutException)
        {
            var missing = Enumerable.Range(0, _worldSize).Where(r => slot.Contributions[r] is null).ToList();
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

    private byte[] Reduce(byte[]?[] contributions, ReduceOperation reduce)
    {
        var length = contributions[0]!.Length;
        for (var rank = 0; rank < contributions.Length; rank++)
        {
            if (contributions[rank]!.Length != length || length % sizeof(float) != 0)
                throw new CollectiveException($"Group '{this.GetPrimaryKeyString()}': rank {rank} sent {contributions[rank]!.Length} bytes, rank 0 sent {length} (fp32 chunks of equal length expected).");
        }
        var resultBytes = (byte[])contributions[0]!.Clone();
        var result = MemoryMarshal.Cast<byte, float>(resultBytes.AsSpan());
        for (var rank = 1; rank < contributions.Length; rank++) AddInPlace(result, MemoryMarshal.Cast<byte, float>(contributions[rank]!.AsSpan()));
        if (reduce == ReduceOperation.Mean && contributions.Length > 1)
        {
            // Division (not multiplication by 1/n) keeps the result identical to the scalar definition.
            float count = contributions.Length;
            for (var i = 0; i < result.Length; i++) result[i] /= count;
        }
        return resultBytes;
    }

    /// <summary>target[i] += source[i], SIMD-wide; element-wise, so bit-identical to the scalar loop.</summary>
    private static void AddInPlace(Span<float> target, ReadOnlySpan<float> source)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && target.Length >= Vector<float>.Count)
        {
            var wideTarget = MemoryMarshal.Cast<float, Vector<float>>(target);
            var wideSource = MemoryMarshal.Cast<float, Vector<float>>(source);
            for (var v = 0; v < wideTarget.Length; v++) wideTarget[v] += wideSource[v];
            i = wideTarget.Length * Vector<float>.Count;
        }
        for (; i < target.Length; i++) target[i] += source[i];
    }

    private sealed class Slot(string kind, int worldSize)
    {
        public string Kind { get; } = kind;
        public byte[]?[] Contributions { get; } = new byte[worldSize][];
        public int Arrived { get; set; }
        public int Returned { get; set; }
        public TaskCompletionSource<byte[]> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
