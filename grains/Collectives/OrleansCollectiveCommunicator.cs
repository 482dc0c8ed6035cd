using RAE.GrainInterfaces;

namespace RAE.Grains.Collectives;

/// <summary>
/// Collectives over Orleans messaging: vectors are cut into chunks of <see cref="ChunkElements"/> floats (2 MiB by
/// default, far below Orleans' message size limit) and each chunk meets the other ranks' chunks in the group grain.
/// Several chunks travel at once so the transfer is pipelined. Chunks go over the wire as raw fp32 bytes written straight
/// from the caller's vector (<see cref="FloatChunk"/>), and results land directly in the destination vector. A group
/// of one rank sends no messages at all.
/// </summary>
public sealed class OrleansCollectiveCommunicator(IGrainFactory grainFactory, string groupKey, int rank, int worldSize, int chunkElements = OrleansCollectiveCommunicator.DefaultChunkElements, int chunksInFlight = OrleansCollectiveCommunicator.DefaultChunksInFlight)
    : ICollectiveCommunicator
{
    /// <summary>
    /// 2 MiB chunks, 16 in flight (32 MB per rank on the way). `rae bench cluster` between two silo processes, 50 M
    /// elements (200 MB per rank), this 2-core machine shared with other jobs (load average 14-27), median MB/s over
    /// three runs: 0.5 MiB x 8/16/32: 110, 190, 215; 1 MiB x 2/4/8/16/32: 120, 194, 143-241, 161-276, 133;
    /// 2 MiB x 8/16/32: 184-248, 177-242, 241; 4 MiB x 2/4/8: 111, 126, 113 (the former default: 4 MiB x 4);
    /// 16 MiB x 2/4/8: 159, 142, 168. Many small messages in flight hide the scheduling delays of a loaded machine;
    /// chunk arrays are pooled (<see cref="FloatChunk"/>), so small chunks cost no extra allocations.
    /// </summary>
    public const int DefaultChunkElements = 512 * 1024;

    public const int DefaultChunksInFlight = 16;

    private readonly ICollectiveGroupGrain _group = grainFactory.GetGrain<ICollectiveGroupGrain>(groupKey);
    private long _nextOperation;

    public int Rank { get; } = rank;
    public int WorldSize { get; } = worldSize;
    public int ChunkElements { get; } = chunkElements > 0 ? chunkElements : throw new ArgumentOutOfRangeException(nameof(chunkElements), chunkElements, "Chunk size must be positive.");

    public int ChunksInFlight { get; } = chunksInFlight > 0 ? chunksInFlight : throw new ArgumentOutOfRangeException(nameof(chunksInFlight), chunksInFlight, "At least one chunk must be in flight.");

    public async Task<float[]> AllReduceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var result = new float[data.Length];
        await ReduceAsync(data, result, reduce, cancellationToken);
        return result;
    }

    public Task AllReduceInPlaceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        return ReduceAsync(data, data, reduce, cancellationToken);
    }

    public async Task<float[]> BroadcastAsync(float[]? data, int length, int root, CancellationToken cancellationToken = default)
    {
        if (root < 0 || root >= WorldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"Broadcast root must be a rank of the group (0..{WorldSize - 1}).");
        if (Rank == root && (data is null || data.Length != length))
            throw new ArgumentException($"Broadcast root {root} must pass a vector of {length} elements.", nameof(data));
        var operation = _nextOperation++;
        if (WorldSize == 1) return (float[])data!.Clone();
        var result = new float[length];
        await ForEachChunkAsync(length, async (index, offset, count) =>
        {
            var chunk = Rank == root ? FloatChunk.View(data!, offset, count) : null;
            var received = await _group.BroadcastChunk(operation, Rank, root, index, chunk);
            CopyBack(received, result, offset, count, $"Broadcast {operation} chunk {index}");
        }, cancellationToken);
        return result;
    }

    /// <summary>
    /// Sends views of <paramref name="source"/> (no copy before serialization) and writes each reduced chunk into
    /// <paramref name="destination"/>; the two may be the same vector, since a chunk's reduction is complete before its
    /// result comes back and chunks do not overlap.
    /// </summary>
    private async Task ReduceAsync(float[] source, float[] destination, ReduceOperation reduce, CancellationToken cancellationToken)
    {
        var operation = _nextOperation++;
        if (WorldSize == 1)
        {
            if (!ReferenceEquals(source, destination)) source.CopyTo(destination, 0);
            return;
        }
        await ForEachChunkAsync(source.Length, async (index, offset, count) =>
        {
            var reduced = await _group.AllReduceChunk(operation, Rank, index, FloatChunk.View(source, offset, count), reduce);
            CopyBack(reduced, destination, offset, count, $"All-reduce {operation} chunk {index}");
        }, cancellationToken);
    }

    public Task BarrierAsync(CancellationToken cancellationToken = default)
    {
        var operation = _nextOperation++;
        return WorldSize == 1 ? Task.CompletedTask : _group.Barrier(operation, Rank);
    }

    /// <summary>Nothing to release: every operation's state lives in the group grain.</summary>
    public void Dispose()
    {
    }

    private static void CopyBack(FloatChunk received, float[] result, int offset, int count, string what)
    {
        try
        {
            if (received.Length != count)
                throw new CollectiveException($"{what}: got {received.Length} elements back, expected {count}; do all ranks agree on the length?");
            received.Values.CopyTo(result.AsSpan(offset, count));
        }
        finally
        {
            received.Release();
        }
    }

    private async Task ForEachChunkAsync(int length, Func<int, int, int, Task> transfer, CancellationToken cancellationToken)
    {
        var chunkCount = Math.Max(1, (length + ChunkElements - 1) / ChunkElements);
        var inFlight = new List<Task>(ChunksInFlight);
        for (var index = 0; index < chunkCount; index++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var offset = index * ChunkElements;
            inFlight.Add(transfer(index, offset, Math.Min(ChunkElements, length - offset)));
            if (inFlight.Count >= ChunksInFlight)
            {
                var finished = await Task.WhenAny(inFlight);
                inFlight.Remove(finished);
                await finished;
            }
        }
        await Task.WhenAll(inFlight);
    }
}
