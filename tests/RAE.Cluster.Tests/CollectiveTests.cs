using RAE.GrainInterfaces;
using RAE.Grains.Collectives;

namespace RAE.Cluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class CollectiveTests(ClusterFixture fixture)
{
    private const int World = 3;
    private const int ChunkElements = 1000;
    private const int Length = 2500; // three chunks, the last one partial

    [Fact]
    public async Task AllReduceSumOfThreeRanksEqualsTheRankOrderedSumWhateverTheArrivalOrder()
    {
        var vectors = WideRangeVectors(seed: 11);
        var expected = RankOrderedSum(vectors);
        // The test can fail: adding in another order gives different floats for some elements.
        var reversed = new float[Length];
        for (var i = 0; i < Length; i++) reversed[i] = (vectors[2][i] + vectors[1][i]) + vectors[0][i];
        Assert.NotEqual(expected, reversed);

        foreach (var arrivalOrder in new[] { new[] { 0, 1, 2 }, new[] { 2, 1, 0 }, new[] { 1, 2, 0 } })
        {
            var group = await NewGroupAsync();
            var results = await RunInOrderAsync(arrivalOrder, rank =>
                Communicator(group, rank).AllReduceAsync(vectors[rank], ReduceOperation.Sum));
            foreach (var result in results) Assert.Equal(expected, result);
        }
    }

    [Fact]
    public async Task AllReduceMeanDividesTheRankOrderedSumByTheWorldSize()
    {
        var vectors = WideRangeVectors(seed: 5);
        var sum = RankOrderedSum(vectors);
        var group = await NewGroupAsync();
        var results = await Task.WhenAll(Enumerable.Range(0, World).Select(rank => Communicator(group, rank).AllReduceAsync(vectors[rank], ReduceOperation.Mean)));
        foreach (var result in results) Assert.Equal(sum.Select(s => s / 3f).ToArray(), result);
    }

    [Fact]
    public async Task InPlaceAllReduceOverwritesEveryRanksVectorWithTheRankOrderedSum()
    {
        var vectors = WideRangeVectors(seed: 17);
        var expected = RankOrderedSum(vectors);
        var group = await NewGroupAsync();
        var communicators = Enumerable.Range(0, World).Select(rank => Communicator(group, rank)).ToList();

        await Task.WhenAll(communicators.Select(c => c.AllReduceInPlaceAsync(vectors[c.Rank], ReduceOperation.Sum)));

        foreach (var vector in vectors) Assert.Equal(expected, vector);
        // The next operation on the same group works on the new values: every rank now holds the same sum.
        await Task.WhenAll(communicators.Select(c => c.AllReduceInPlaceAsync(vectors[c.Rank], ReduceOperation.Mean)));
        foreach (var vector in vectors) Assert.Equal(expected.Select(v => (v + v + v) / 3f).ToArray(), vector);
    }

    [Fact]
    public async Task BroadcastGivesEveryRankTheRootsVectorAndBarrierReleasesAll()
    {
        var vectors = WideRangeVectors(seed: 3);
        var group = await NewGroupAsync();
        var communicators = Enumerable.Range(0, World).Select(rank => Communicator(group, rank)).ToList();
        var results = await Task.WhenAll(communicators.Select(c => c.BroadcastAsync(c.Rank == 1 ? vectors[1] : null, Length, root: 1)));
        foreach (var result in results) Assert.Equal(vectors[1], result);
        await Task.WhenAll(communicators.Select(c => c.BarrierAsync())).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task MissingRankTimesOutWithAnErrorThatNamesIt()
    {
        var group = await NewGroupAsync(TimeSpan.FromSeconds(1));
        var vectors = WideRangeVectors(seed: 1);
        var present = Enumerable.Range(0, 2).Select(rank => Communicator(group, rank).AllReduceAsync(vectors[rank], ReduceOperation.Sum)).ToList();
        var error = await Assert.ThrowsAsync<CollectiveException>(() => present[0]);
        Assert.Contains("rank(s) 2 did not arrive", error.Message);
    }

    [Fact]
    public async Task AbortedGroupFailsPendingOperations()
    {
        var group = await NewGroupAsync();
        var pending = Communicator(group, 0).BarrierAsync();
        await Task.Delay(100);
        await fixture.Grains.GetGrain<ICollectiveGroupGrain>(group).Abort("silo lost");
        var error = await Assert.ThrowsAsync<CollectiveException>(() => pending);
        Assert.Contains("silo lost", error.Message);
    }

    private OrleansCollectiveCommunicator Communicator(string group, int rank) =>
        new(fixture.Grains, group, rank, World, ChunkElements);

    private async Task<string> NewGroupAsync(TimeSpan? timeout = null)
    {
        var key = "test-" + Guid.NewGuid().ToString("N");
        await fixture.Grains.GetGrain<ICollectiveGroupGrain>(key).Configure(World, timeout ?? TimeSpan.FromSeconds(20));
        return key;
    }

    /// <summary>Starts the ranks one after another, each once the previous one's first chunk has surely arrived.</summary>
    private static async Task<float[][]> RunInOrderAsync(int[] order, Func<int, Task<float[]>> run)
    {
        var tasks = new Task<float[]>[World];
        foreach (var rank in order)
        {
            tasks[rank] = run(rank);
            await Task.Delay(150);
        }
        return await Task.WhenAll(tasks);
    }

    /// <summary>Values spread over many magnitudes, so the order of float additions changes results.</summary>
    private static float[][] WideRangeVectors(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, World).Select(_ => Enumerable.Range(0, Length)
            .Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 8)))).ToArray()).ToArray();
    }

    private static float[] RankOrderedSum(float[][] vectors)
    {
        var sum = new float[Length];
        for (var i = 0; i < Length; i++) sum[i] = (vectors[0][i] + vectors[1][i]) + vectors[2][i];
        return sum;
    }
}
