namespace RAE.GrainInterfaces;

public enum ReduceOperation
{
    Sum,
    Mean,
}

/// <summary>
/// Rendezvous point of one data-parallel group generation (key: "{jobId}/g{generation}"). Every rank calls the same
/// operation with the same operation number; the call returns once all ranks have contributed. Reductions add the
/// contributions in rank order, so the result never depends on arrival order. Payloads are chunks: callers split
/// large vectors so that every message stays far below Orleans' message size limit. A chunk is a <see cref="FloatChunk"/>:
/// raw fp32 bytes on the wire (Orleans would encode a float[] element by element), no copy within a silo, pooled
/// arrays instead of a fresh large-object-heap array per message. Callers release the chunk they get back.
/// </summary>
public interface ICollectiveGroupGrain : IGrainWithStringKey
{
    /// <summary>Sets the group's size and how long an operation waits for missing ranks. Idempotent.</summary>
    Task Configure(int worldSize, TimeSpan timeout);

    [ResponseTimeout("00:30:00")]
    Task<FloatChunk> AllReduceChunk(long operation, int rank, int chunkIndex, FloatChunk chunk, ReduceOperation reduce);

    /// <summary>The root passes its chunk, the others pass null; everyone gets the root's chunk.</summary>
    [ResponseTimeout("00:30:00")]
    Task<FloatChunk> BroadcastChunk(long operation, int rank, int root, int chunkIndex, FloatChunk? chunk);

    [ResponseTimeout("00:30:00")]
    Task Barrier(long operation, int rank);

    /// <summary>Fails every pending and future operation with the reason (the group is being re-formed).</summary>
    Task Abort(string reason);
}
