using RAE.GrainInterfaces;

namespace RAE.Grains.Collectives;

/// <summary>
/// The collectives a data-parallel rank needs. Every rank of the group calls the same operations in the same order.
/// Implementations: through the group grain (<see cref="OrleansCollectiveCommunicator"/>), a TCP ring between the ranks
/// (<see cref="Ring.RingCollectiveCommunicator"/>) and NCCL on CUDA ranks (<see cref="Nccl.NcclCollectiveCommunicator"/>);
/// <see cref="CollectiveCommunicators"/> picks one. Disposing releases connections and native resources.
/// </summary>
public interface ICollectiveCommunicator : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }

    /// <summary>Element-wise sum (or mean) of every rank's vector, added in rank order; all vectors have the same length.</summary>
    Task<float[]> AllReduceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default);

    /// <summary>The same reduction written over <paramref name="data"/> itself: no result vector is allocated.</summary>
    Task AllReduceInPlaceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default);

    /// <summary>
    /// The in-place reduction run to completion on the calling thread, which it blocks: for a rank's own worker thread
    /// between backward and update (never an Orleans scheduler thread). A communicator that can move the bytes on the
    /// caller's thread does (the ring: no hand-over to other threads, so none has to be woken); the others wait for
    /// their asynchronous operation. The result is the same bits as <see cref="AllReduceInPlaceAsync(float[], ReduceOperation, CancellationToken)"/>.
    /// </summary>
    void AllReduceInPlace(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default) =>
        AllReduceInPlaceAsync(data, reduce, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// The in-place reduction of a vector that backward is still writing: a communicator that can reduce a finished prefix
    /// while the rest is computed does so (the ring); the others wait for the whole vector, then reduce it. The result
    /// is the same bits either way.
    /// </summary>
    async Task AllReduceInPlaceAsync(float[] data, GradientReadiness readiness, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(readiness);
        await readiness.WhenComplete.WaitAsync(cancellationToken).ConfigureAwait(false);
        await AllReduceInPlaceAsync(data, reduce, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The root's vector on every rank; non-roots pass null and the expected length.</summary>
    Task<float[]> BroadcastAsync(float[]? data, int length, int root, CancellationToken cancellationToken = default);

    Task BarrierAsync(CancellationToken cancellationToken = default);
}

/// <summary>A collective operation could not finish: a rank did not arrive in time, or the group was aborted.</summary>
[GenerateSerializer]
public sealed class CollectiveException : Exception
{
    public CollectiveException(string message) : base(message) { }
    public CollectiveException(string message, Exception inner) : base(message, inner) { }
}
