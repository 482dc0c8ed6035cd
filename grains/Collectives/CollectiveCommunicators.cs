using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives.Nccl;
using RAE.Grains.Collectives.Ring;

namespace RAE.Grains.Collectives;

/// <summary>
/// Picks a rank's communicator: NCCL for a CUDA device ("cuda", "cuda:N") when libnccl.so.2 and the CUDA runtime load
/// and report a GPU (unless the silo asks for the Orleans transport), otherwise the configured transport: the TCP ring
/// (the default; mutual TLS when the silo gives <see cref="RingTls"/>) or the star through the group grain.
/// </summary>
public static class CollectiveCommunicators
{
    public static ICollectiveCommunicator Create(CollectiveTransport transport, string device, IGrainFactory grainFactory, string groupKey,
        int rank, int worldSize, IPAddress listenAddress, ILogger? logger = null, RingTls? ringTls = null)
    {
        if (transport == CollectiveTransport.Orleans)
            return new OrleansCollectiveCommunicator(grainFactory, groupKey, rank, worldSize);
        if (CudaDeviceIndex(device) is { } index && NcclRuntime.IsAvailable)
            return new NcclCollectiveCommunicator(grainFactory, groupKey, rank, worldSize, index);
        return new RingCollectiveCommunicator(grainFactory, groupKey, rank, worldSize, listenAddress, logger, tls: ringTls);
    }

    /// <summary>The GPU index of a CUDA device name ("cuda" is 0), or null for any other device.</summary>
    public static int? CudaDeviceIndex(string device)
    {
        if (device == "cuda") return 0;
        return device.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(device.AsSpan("cuda:".Length), NumberStyles.None, CultureInfo.InvariantCulture, out var index) ? index : null;
    }
}
