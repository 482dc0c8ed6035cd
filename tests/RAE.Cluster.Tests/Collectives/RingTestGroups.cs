using System.Net;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives.Ring;

namespace RAE.Cluster.Tests.Collectives;

/// <summary>A fresh collective group configured on the test cluster and one ring communicator per rank of this process.</summary>
internal static class RingTestGroups
{
    public static async Task<(string Group, RingCollectiveCommunicator[] Ranks)> NewAsync(ClusterFixture fixture, int world, TimeSpan timeout,
        int bucketElements, int pieceElements)
    {
        var key = "ring-test-" + Guid.NewGuid().ToString("N");
        await fixture.Grains.GetGrain<ICollectiveGroupGrain>(key).Configure(world, timeout);
        return (key, Enumerable.Range(0, world)
            .Select(rank => new RingCollectiveCommunicator(fixture.Grains, key, rank, world, IPAddress.Loopback, bucketElements: bucketElements, pieceElements: pieceElements))
            .ToArray());
    }
}
