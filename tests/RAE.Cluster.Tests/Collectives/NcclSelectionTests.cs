using System.Net;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives;
using RAE.Grains.Collectives.Nccl;
using RAE.Grains.Collectives.Ring;

namespace RAE.Cluster.Tests.Collectives;

/// <summary>
/// NCCL is used for CUDA ranks only where it loads. On a machine without an NVIDIA GPU the test asserts that NCCL is
/// reported unavailable (with its reason) and that a CUDA rank falls back to the ring; on a GPU machine with NCCL it runs
/// a real one-rank NCCL all-reduce and broadcast through the same interface.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class NcclSelectionTests(ClusterFixture fixture)
{
    private static bool HasNvidiaGpu => File.Exists("/dev/nvidia0") || File.Exists("/proc/driver/nvidia/version");

    [Fact]
    public async Task CudaRanksUseNcclWhereItLoadsAndTheRingEverywhereElse()
    {
        using (var cpu = Create(CollectiveTransport.Ring, "cpu")) Assert.IsType<RingCollectiveCommunicator>(cpu);
        using (var star = Create(CollectiveTransport.Orleans, "cuda:0")) Assert.IsType<OrleansCollectiveCommunicator>(star);
        Assert.Equal(0, CollectiveCommunicators.CudaDeviceIndex("cuda"));
        Assert.Equal(3, CollectiveCommunicators.CudaDeviceIndex("cuda:3"));
        Assert.Null(CollectiveCommunicators.CudaDeviceIndex("cpu"));
        Assert.Null(CollectiveCommunicators.CudaDeviceIndex("cuda:x"));

        using var cuda = Create(CollectiveTransport.Ring, "cuda:0");
        if (!HasNvidiaGpu)
        {
            Assert.False(NcclRuntime.IsAvailable, $"no NVIDIA GPU here, yet NCCL reports: {NcclRuntime.Reason}");
            Assert.IsType<RingCollectiveCommunicator>(cuda);
            return;
        }
        Assert.True(NcclRuntime.IsAvailable, $"this machine has an NVIDIA GPU, but NCCL is unavailable: {NcclRuntime.Reason}");
        var nccl = Assert.IsType<NcclCollectiveCommunicator>(cuda);
        float[] values = [1.5f, -2f, 3.25f, 1e-7f, 8e6f];
        Assert.Equal(values, await nccl.AllReduceAsync(values, ReduceOperation.Sum));
        Assert.Equal(values, await nccl.BroadcastAsync(values, values.Length, root: 0));
        await nccl.BarrierAsync();
    }

    private ICollectiveCommunicator Create(CollectiveTransport transport, string device) =>
        CollectiveCommunicators.Create(transport, device, fixture.Grains, "nccl-selection-" + Guid.NewGuid().ToString("N"), rank: 0, worldSize: 1, IPAddress.Loopback);
}
