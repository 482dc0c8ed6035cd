using System.Diagnostics;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives;
using RAE.Grains.Collectives.Ring;

namespace RAE.Cluster.Tests.Collectives;

/// <summary>The ring's all-reduce run on the caller's own thread (<see cref="RingCollectiveCommunicator.AllReduceInPlace"/>),
/// as a rank's worker thread runs it between backward and update.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RingCallingThreadTests(ClusterFixture fixture)
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task OnTheCallersThreadTheSumIsTheChainOrderSumBitForBitAndMixesWithTheRingThreads(int world)
    {
        var vectors = RingCollectiveTests.WideRangeVectors(world, seed: 70 + world);
        var expected = RingCollectiveTests.ChainOrderedSum(vectors);
        var ranks = await NewRingAsync(world, TimeSpan.FromSeconds(20));
        try
        {
            // The first operation also forms the ring, from the calling thread.
            var sums = vectors.Select(v => (float[])v.Clone()).ToArray();
            await Task.WhenAll(ranks.Select(c => OnOwnThread(() => c.AllReduceInPlace(sums[c.Rank], ReduceOperation.Sum))));
            foreach (var sum in sums) Assert.Equal(expected, sum);

            // Rank 0 on its calling thread, the others on their ring threads: the same frames, so the same bits.
            await Task.WhenAll(ranks.Select(c => c.Rank == 0
                ? OnOwnThread(() => c.AllReduceInPlace(vectors[0], ReduceOperation.Mean))
                : c.AllReduceInPlaceAsync(vectors[c.Rank], ReduceOperation.Mean)));
            var expectedMean = expected.Select(v => v / world).ToArray();
            foreach (var vector in vectors) Assert.Equal(expectedMean, vector);
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task AVectorThatFillsTheSocketBuffersResumesItsPartialWritesAndSumsExactly()
    {
        const int length = 6_000_000; // 24 MB per rank in the default buckets and pieces: sends meet full socket buffers
        var (_, ranks) = await RingTestGroups.NewAsync(fixture, 3, TimeSpan.FromSeconds(60),
            RingCollectiveCommunicator.DefaultBucketElements, RingCollectiveCommunicator.DefaultPieceElements);
        try
        {
            var vectors = Enumerable.Range(0, 3).Select(rank => Enumerable.Range(0, length).Select(i => (rank + 1f) * Pattern(i)).ToArray()).ToArray();
            await Task.WhenAll(ranks.Select(c => OnOwnThread(() => c.AllReduceInPlace(vectors[c.Rank], ReduceOperation.Sum))));
            foreach (var vector in vectors)
            {
                var wrong = Enumerable.Range(0, length).FirstOrDefault(i => vector[i] != 6f * Pattern(i), -1);
                Assert.True(wrong < 0, $"element {wrong}: {(wrong < 0 ? 0 : vector[wrong])}, expected {(wrong < 0 ? 0 : 6f * Pattern(wrong))}");
            }
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task APeerThatDiesFailsTheCallersAtOnceAHungOneAfterTheTimeoutAndAnAbortAtOnce()
    {
        var timeout = TimeSpan.FromSeconds(30);
        var ranks = await NewRingAsync(3, timeout);
        try
        {
            await Task.WhenAll(ranks.Select(c => c.BarrierAsync()));
            var vectors = RingCollectiveTests.WideRangeVectors(3, seed: 5, length: 1_000_000);
            var clock = Stopwatch.StartNew();
            var survivors = ranks.Take(2).Select(c => OnOwnThread(() => c.AllReduceInPlace(vectors[c.Rank], ReduceOperation.Sum))).ToList();
            await Task.Delay(200);
            ranks[2].Dispose(); // its connections close, as when its process dies
            foreach (var survivor in survivors)
            {
                var error = await Assert.ThrowsAsync<CollectiveException>(() => survivor.WaitAsync(timeout / 2));
                Assert.True(error.Message.Contains("closed", StringComparison.Ordinal), error.Message);
            }
            Assert.True(clock.Elapsed < timeout, $"the failure took {clock.Elapsed.TotalSeconds:F1} s");
            var again = Assert.Throws<CollectiveException>(() => ranks[0].AllReduceInPlace(new float[10], ReduceOperation.Sum));
            Assert.Contains("broken", again.Message);
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }

        var hung = await NewRingAsync(2, TimeSpan.FromSeconds(1));
        try
        {
            await Task.WhenAll(hung.Select(c => c.BarrierAsync()));
            // Rank 1 stays connected but never joins: nothing closes a connection, so only the timeout ends the wait.
            var error = await Assert.ThrowsAsync<CollectiveException>(() =>
                OnOwnThread(() => hung[0].AllReduceInPlace(new float[5000], ReduceOperation.Sum)).WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Contains("no progress on the ring for 1 s", error.Message);
        }
        finally
        {
            foreach (var rank in hung) rank.Dispose();
        }

        var (group, aborted) = await RingTestGroups.NewAsync(fixture, 2, TimeSpan.FromMinutes(5), RingCollectiveTests.Bucket, RingCollectiveTests.Piece);
        try
        {
            await Task.WhenAll(aborted.Select(c => c.BarrierAsync()));
            var blocked = OnOwnThread(() => aborted[0].AllReduceInPlace(new float[5000], ReduceOperation.Sum)); // rank 1 never comes
            await Task.Delay(100);
            var clock = Stopwatch.StartNew();
            await fixture.Grains.GetGrain<ICollectiveGroupGrain>(group).Abort("silo lost");
            var error = await Assert.ThrowsAsync<CollectiveException>(() => blocked.WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.True(error.Message.Contains("silo lost", StringComparison.Ordinal) || error.Message.Contains("saw the group aborted", StringComparison.Ordinal), error.Message);
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"the abort took {clock.Elapsed.TotalSeconds:F1} s to end the wait");
        }
        finally
        {
            foreach (var rank in aborted) rank.Dispose();
        }
    }

    private async Task<RingCollectiveCommunicator[]> NewRingAsync(int world, TimeSpan timeout) =>
        (await RingTestGroups.NewAsync(fixture, world, timeout, RingCollectiveTests.Bucket, RingCollectiveTests.Piece)).Ranks;

    /// <summary>A thread of its own per rank, as each rank's worker thread: the call blocks it until the operation ends.</summary>
    private static Task OnOwnThread(Action action) =>
        Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static float Pattern(int index) => index % 251 - 125;
}
