using System.Runtime.InteropServices;

namespace RAE.Grains.Collectives.Nccl;

/// <summary>ncclUniqueId: 128 opaque bytes, passed by value to ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential, Size = NcclUniqueId.Bytes)]
internal unsafe struct NcclUniqueId
{
    public const int Bytes = 128;
    public fixed byte Internal[Bytes];
}

/// <summary>
/// The entry points of `libnccl.so.2` and the CUDA runtime (`libcudart.so.*`) an NCCL communicator needs, resolved with
/// <see cref="NativeLibrary"/> at first use (no P/Invoke import is bound before the libraries are known to load, so a
/// CPU machine only gets <see cref="Availability"/> saying why NCCL is not used). Calls return the libraries' status
/// codes (0: success); <see cref="Check"/> turns a failure into an exception with NCCL's or CUDA's own message.
/// </summary>
public sealed unsafe class NcclRuntime
{
    public const string NcclLibrary = "libnccl.so.2";
    internal const int Float32 = 7;   // ncclFloat32
    internal const int Sum = 0;       // ncclSum
    internal const int HostToDevice = 1, DeviceToHost = 2; // cudaMemcpyKind

    private static readonly string[] CudaRuntimeLibraries = ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"];
    private static readonly Lazy<(NcclRuntime? Runtime, string Reason)> Loaded = new(Load);

    internal delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    internal delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> CommInitRank;
    internal delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> AllReduce;
    internal delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> Broadcast;
    internal delegate* unmanaged<IntPtr, int> CommDestroy;
    internal delegate* unmanaged<int, IntPtr> NcclErrorString;
    internal delegate* unmanaged<int, int> SetDevice;
    internal delegate* unmanaged<int*, int> GetDeviceCount;
    internal delegate* unmanaged<IntPtr*, nuint, int> Malloc;
    internal delegate* unmanaged<IntPtr, int> Free;
    internal delegate* unmanaged<IntPtr, IntPtr, nuint, int, int> Memcpy;
    internal delegate* unmanaged<IntPtr, int> StreamSynchronize;
    internal delegate* unmanaged<int, IntPtr> CudaErrorString;

    private NcclRuntime()
    {
    }

    /// <summary>True when libnccl.so.2 and the CUDA runtime load and report at least one GPU; <see cref="Reason"/> says why not otherwise.</summary>
    public static bool IsAvailable => Loaded.Value.Runtime is not null;

    /// <summary>What was loaded, or why NCCL is not available on this machine.</summary>
    public static string Reason => Loaded.Value.Reason;

    internal static NcclRuntime Instance => Loaded.Value.Runtime ?? throw new InvalidOperationException($"NCCL is not available: {Reason}");

    internal byte[] NewUniqueId()
    {
        NcclUniqueId id;
        Check(GetUniqueId(&id), "ncclGetUniqueId");
        return new ReadOnlySpan<byte>(id.Internal, NcclUniqueId.Bytes).ToArray();
    }

    /// <summary>Selects the GPU on the calling thread and joins the communicator of <paramref name="uniqueId"/>.</summary>
    internal IntPtr InitRank(byte[] uniqueId, int worldSize, int rank, int deviceIndex)
    {
        Check(SetDevice(deviceIndex), $"cudaSetDevice({deviceIndex})", cuda: true);
        NcclUniqueId id;
        uniqueId.CopyTo(new Span<byte>(id.Internal, NcclUniqueId.Bytes));
        IntPtr communicator;
        Check(CommInitRank(&communicator, worldSize, id, rank), $"ncclCommInitRank(rank {rank} of {worldSize})");
        return communicator;
    }

    internal IntPtr Allocate(long bytes)
    {
        IntPtr buffer;
        Check(Malloc(&buffer, (nuint)Math.Max(bytes, 4)), $"cudaMalloc({bytes} bytes)", cuda: true);
        return buffer;
    }

    internal void Release(IntPtr buffer) => Check(Free(buffer), "cudaFree", cuda: true);

    internal void Destroy(IntPtr communicator) => Check(CommDestroy(communicator), "ncclCommDestroy");

    /// <summary>Copies <paramref name="host"/> to <paramref name="device"/>, runs <paramref name="collective"/> on the
    /// default stream, waits for it and copies the result back over <paramref name="host"/>.</summary>
    internal void RoundTrip(float[] host, IntPtr device, Func<NcclRuntime, IntPtr, int> collective, string call)
    {
        var bytes = (nuint)host.Length * sizeof(float);
        fixed (float* values = host)
        {
            Check(Memcpy(device, (IntPtr)values, bytes, HostToDevice), "cudaMemcpy to the GPU", cuda: true);
            Check(collective(this, device), call);
            Check(StreamSynchronize(IntPtr.Zero), "cudaStreamSynchronize", cuda: true);
            Check(Memcpy((IntPtr)values, device, bytes, DeviceToHost), "cudaMemcpy from the GPU", cuda: true);
        }
    }

    internal int AllReduceSum(IntPtr buffer, int count, IntPtr communicator) =>
        AllReduce(buffer, buffer, (nuint)count, Float32, Sum, communicator, IntPtr.Zero);

    internal int BroadcastFrom(IntPtr buffer, int count, int root, IntPtr communicator) =>
        Broadcast(buffer, buffer, (nuint)count, Float32, root, communicator, IntPtr.Zero);

    internal void Check(int status, string call, bool cuda = false)
    {
        if (status == 0) return;
        var message = Marshal.PtrToStringUTF8(cuda ? CudaErrorString(status) : NcclErrorString(status)) ?? "unknown error";
        throw new CollectiveException($"{call} failed with {(cuda ? "CUDA" : "NCCL")} status {status}: {message}");
    }

    private static (NcclRuntime?, string) Load()
    {
        if (!NativeLibrary.TryLoad(NcclLibrary, out var nccl))
            return (null, $"{NcclLibrary} is not installed or cannot be loaded");
        var cudartName = CudaRuntimeLibraries.FirstOrDefault(name => NativeLibrary.TryLoad(name, out _));
        if (cudartName is null || !NativeLibrary.TryLoad(cudartName, out var cudart))
            return (null, $"{NcclLibrary} loads but no CUDA runtime does ({string.Join(", ", CudaRuntimeLibraries)})");
        var runtime = new NcclRuntime
        {
            GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)NativeLibrary.GetExport(nccl, "ncclGetUniqueId"),
            CommInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)NativeLibrary.GetExport(nccl, "ncclCommInitRank"),
            AllReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)NativeLibrary.GetExport(nccl, "ncclAllReduce"),
            Broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)NativeLibrary.GetExport(nccl, "ncclBroadcast"),
            CommDestroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(nccl, "ncclCommDestroy"),
            NcclErrorString = (delegate* unmanaged<int, IntPtr>)NativeLibrary.GetExport(nccl, "ncclGetErrorString"),
            SetDevice = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(cudart, "cudaSetDevice"),
            GetDeviceCount = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(cudart, "cudaGetDeviceCount"),
            Malloc = (delegate* unmanaged<IntPtr*, nuint, int>)NativeLibrary.GetExport(cudart, "cudaMalloc"),
            Free = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(cudart, "cudaFree"),
            Memcpy = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int>)NativeLibrary.GetExport(cudart, "cudaMemcpy"),
            StreamSynchronize = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(cudart, "cudaStreamSynchronize"),
            CudaErrorString = (delegate* unmanaged<int, IntPtr>)NativeLibrary.GetExport(cudart, "cudaGetErrorString"),
        };
        int devices;
        var status = runtime.GetDeviceCount(&devices);
        if (status != 0 || devices < 1)
            return (null, $"{NcclLibrary} and {cudartName} load but CUDA reports no GPU (status {status}, {(status == 0 ? devices : 0)} device(s))");
        return (runtime, $"{NcclLibrary} and {cudartName} loaded; {devices} GPU(s)");
    }
}
