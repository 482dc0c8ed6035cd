using RAE.GrainInterfaces;
using RAE.Grains.Collectives;

namespace RAE.Cluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class SingleRankCollectiveTests(ClusterFixture fixture)
{
    [Fact]
    public async Task OneRankGroupAnswersLocallyWithoutTheGroupGrain()
    {
        // The group is never configured: any call that reached its grain would fail with "never configured".
        var communicator = new OrleansCollectiveCommunicator(fixture.Grains, "unconfigured-" + Guid.NewGuid().ToString("N"), rank: 0, worldSize: 1, chunkElements: 2);
        float[] data = [1.5f, -2f, 3.25f, 1e-7f, 8e6f];

        var sum = await communicator.AllReduceAsync(data, ReduceOperation.Sum);
        var mean = await communicator.AllReduceAsync(data, ReduceOperation.Mean);
        var broadcast = await communicator.BroadcastAsync(data, data.Length, root: 0);
        await communicator.BarrierAsync();

        Assert.Equal(data, sum);
        Assert.Equal(data, mean);
        Assert.Equal(data, broadcast);
        Assert.NotSame(data, sum); // callers own the result, as with several ranks
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => communicator.BroadcastAsync(null, data.Length, root: 1));
    }
}
