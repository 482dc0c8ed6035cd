using RAE.GrainInterfaces;
using RAE.Grains.Workers;

namespace RAE.Grains.Collectives.Nccl;

/// <summary>
/// Collectives of CUDA ranks through NCCL (`libnccl.so.2`, see <see cref="NcclRuntime"/>). At the first operation rank 0
/// creates the ncclUniqueId and the collective group grain hands it to the other ranks; every rank then joins with
/// ncclCommInitRank. All CUDA and NCCL calls run on one dedicated thread that has selected the rank's GPU. The vectors
/// of the interface live in host memory: each operation copies them to one device buffer (kept and grown), runs
/// ncclAllReduce (sum) or ncclBroadcast in place on the default stream, waits for it and copies the result back; a mean
/// divides the sum on the host, as the ring does. The order of NCCL's additions is NCCL's own (identical on every rank,
/// not the ring's segment order). Barrier is an all-reduce of one value.
/// </summary>
public sealed class NcclCollectiveCommunicator : ICollectiveCommunicator
{
    private readonly ICollectiveGroupGrain _group;
    private readonly string _groupKey;
    private readonly int _deviceIndex;
    private readonly DedicatedWorkerThread _thread;
    private Task? _initialized;
    private IntPtr _communicator;
    private IntPtr _buffer;
    private long _bufferElements;

    public NcclCollectiveCommunicator(IGrainFactory grainFactory, string groupKey, int rank, int worldSize, int deviceIndex)
    {
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank must be in 0..{worldSize - 1}.");
        ArgumentOutOfRangeException.ThrowIfNegative(deviceIndex);
        _ = NcclRuntime.Instance; // fails with the reason when NCCL is absent
        _group = grainFactory.GetGrain<ICollectiveGroupGrain>(groupKey);
        _groupKey = groupKey;
        _deviceIndex = deviceIndex;
        Rank = rank;
        WorldSize = worldSize;
        _thread = new DedicatedWorkerThread($"rae-nccl-{groupKey}-{rank}");
    }

    public int Rank { get; }
    public int WorldSize { get; }

    public async Task<float[]> AllReduceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var result = (float[])data.Clone();
        await AllReduceInPlaceAsync(result, reduce, cancellationToken);
        return result;
    }

    public async Task AllReduceInPlaceAsync(float[] data, ReduceOperation reduce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        await InitializeAsync();
        await _thread.InvokeAsync(() => Run(data, (nccl, buffer) => nccl.AllReduceSum(buffer, data.Length, _communicator), "ncclAllReduce"));
        if (reduce == ReduceOperation.Mean && WorldSize > 1)
        {
            float count = WorldSize;
            for (var i = 0; i < data.Length; i++) data[i] /= count;
        }
    }

    public async Task<float[]> BroadcastAsync(float[]? data, int length, int root, CancellationToken cancellationToken = default)
    {
        if (root < 0 || root >= WorldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"Broadcast root must be a rank of the group (0..{WorldSize - 1}).");
        if (Rank == root && (data is null || data.Length != length))
            throw new ArgumentException($"Broadcast root {root} must pass a vector of {length} elements.", nameof(data));
        var result = Rank == root ? (float[])data!.Clone() : new float[length];
        await InitializeAsync();
        await _thread.InvokeAsync(() => Run(result, (nccl, buffer) => nccl.BroadcastFrom(buffer, length, root, _communicator), "ncclBroadcast"));
        return result;
    }

    public Task BarrierAsync(CancellationToken cancellationToken = default) => AllReduceInPlaceAsync(new float[1], ReduceOperation.Sum, cancellationToken);

    public void Dispose()
    {
        _thread.InvokeAsync(() =>
        {
            var nccl = NcclRuntime.Instance;
            if (_communicator != IntPtr.Zero) nccl.Destroy(_communicator);
            if (_buffer != IntPtr.Zero) nccl.Release(_buffer);
            _communicator = _buffer = IntPtr.Zero;
        });
        _thread.Dispose();
    }

    private Task InitializeAsync() => _initialized ??= InitializeOnceAsync();

    private async Task InitializeOnceAsync()
    {
        var nccl = NcclRuntime.Instance;
        byte[]? mine = null;
        if (Rank == 0) mine = await _thread.InvokeAsync(nccl.NewUniqueId);
        // A group of one needs no exchange (and may run without a configured group grain).
        var shared = WorldSize == 1 ? mine! : await _group.ExchangeNcclId(Rank, mine);
        if (shared.Length != NcclUniqueId.Bytes)
            throw new CollectiveException($"Group '{_groupKey}': the NCCL unique id has {shared.Length} bytes, expected {NcclUniqueId.Bytes}.");
        _communicator = await _thread.InvokeAsync(() => nccl.InitRank(shared, WorldSize, Rank, _deviceIndex));
    }

    /// <summary>Host → device, the collective in place, wait, device → host (on the dedicated thread).</summary>
    private void Run(float[] data, Func<NcclRuntime, IntPtr, int> collective, string call)
    {
        var nccl = NcclRuntime.Instance;
        if (data.Length > _bufferElements)
        {
            if (_buffer != IntPtr.Zero) nccl.Release(_buffer);
            _buffer = IntPtr.Zero;
            _buffer = nccl.Allocate((long)data.Length * sizeof(float));
            _bufferElements = data.Length;
        }
        nccl.RoundTrip(data, _buffer, collective, $"{call} in group '{_groupKey}'");
    }
}
