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

    /// <summary>
    /// Ring rendezvous: a rank registers the TCP endpoint it listens on; the call returns once every rank of the group
    /// has registered (or fails after the group's timeout naming the missing ranks), with every endpoint in rank order
    /// and the group's random token, which each ring connection must present.
    /// </summary>
    [ResponseTimeout("00:30:00")]
    Task<RingRendezvous> JoinRing(int rank, RingEndpoint endpoint);

    /// <summary>
    /// Long poll: the abort reason as soon as the group is aborted, or null once <paramref name="maxWait"/> has passed
    /// without an abort (the caller asks again). Lets transports that bypass the grain stop when the group is abandoned.
    /// </summary>
    [ResponseTimeout("00:10:00")]
    Task<string?> WaitForAbort(TimeSpan maxWait);

    /// <summary>NCCL rendezvous: rank 0 passes its ncclUniqueId (128 bytes), the others pass null; everyone gets rank 0's id.</summary>
    [ResponseTimeout("00:30:00")]
    Task<byte[]> ExchangeNcclId(int rank, byte[]? uniqueId);
}

/// <summary>Where one rank listens for its ring predecessor (the silo's advertised address and an ephemeral port).</summary>
[GenerateSerializer, Immutable]
public sealed record RingEndpoint([property: Id(0)] string Host, [property: Id(1)] int Port);

/// <summary>Every rank's endpoint in rank order, the group's random token and the collective timeout.</summary>
[GenerateSerializer, Immutable]
public sealed record RingRendezvous(
    [property: Id(0)] IReadOnlyList<RingEndpoint> Endpoints,
    [property: Id(1)] byte[] Token,
    [property: Id(2)] TimeSpan Timeout);
