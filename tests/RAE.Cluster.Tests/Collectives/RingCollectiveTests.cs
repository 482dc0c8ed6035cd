using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives;
using RAE.Grains.Collectives.Ring;

namespace RAE.Cluster.Tests.Collectives;

/// <summary>The TCP ring between ranks of this test process; the cluster's group grain does the rendezvous.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RingCollectiveTests(ClusterFixture fixture)
{
    internal const int Length = 2500;
    internal const int Bucket = 1000; // three buckets, the last one partial
    internal const int Piece = 150;   // several pieces per segment, segments of unequal length

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task AllReduceEqualsTheFixedChainOrderSumBitForBitOnEveryRank(int world)
    {
        var vectors = WideRangeVectors(world, seed: 40 + world);
        var expected = ChainOrderedSum(vectors);
        var ranks = await NewRingAsync(world);
        try
        {
            var sums = await Task.WhenAll(ranks.Select(c => c.AllReduceAsync(vectors[c.Rank], ReduceOperation.Sum)));
            foreach (var sum in sums) Assert.Equal(expected, sum);
            if (world == 2) Assert.Equal(RankOrderedSum(vectors), expected); // two values add the same either way
            if (world == 3) Assert.NotEqual(RankOrderedSum(vectors), expected); // the order is the ring's, and it matters

            // Mean, in place, on the same connections: the sum divided by the world size.
            await Task.WhenAll(ranks.Select(c => c.AllReduceInPlaceAsync(vectors[c.Rank], ReduceOperation.Mean)));
            var expectedMean = expected.Select(v => v / world).ToArray();
            foreach (var vector in vectors) Assert.Equal(expectedMean, vector);
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task BroadcastGivesEveryRankTheRootsVectorAndBarrierReleasesAll()
    {
        var vectors = WideRangeVectors(3, seed: 9);
        var ranks = await NewRingAsync(3);
        try
        {
            var results = await Task.WhenAll(ranks.Select(c => c.BroadcastAsync(c.Rank == 2 ? vectors[2] : null, Length, root: 2)));
            foreach (var result in results) Assert.Equal(vectors[2], result);
            await Task.WhenAll(ranks.Select(c => c.BarrierAsync())).WaitAsync(TimeSpan.FromSeconds(20));
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task ARingRunsEveryCollectiveOnItsOwnTwoThreadsPerRankWhichEndWhenItIsDisposed()
    {
        var before = RingThreads();
        var ranks = await NewRingAsync(3);
        try
        {
            for (var round = 0; round < 5; round++)
                await Task.WhenAll(ranks.Select(c => c.AllReduceInPlaceAsync(new float[Length], ReduceOperation.Sum)));
            // Tests run one at a time, but rings of earlier tests may still be ending: these three add exactly six.
            Assert.InRange(RingThreads(), 6, before + 6);
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
        var deadline = Stopwatch.StartNew();
        while (RingThreads() > before && deadline.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(50);
        Assert.True(RingThreads() <= before, $"{RingThreads()} ring threads remain after disposal, {before} before the ring");
    }

    /// <summary>Threads of this process named as a ring's (Linux keeps the first 15 characters of a thread's name).</summary>
    private static int RingThreads() => Directory.EnumerateDirectories("/proc/self/task").Count(task =>
    {
        try
        {
            return File.ReadAllText(Path.Combine(task, "comm")).StartsWith("rae-ring-", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false; // the thread ended while the list was read
        }
    });

    [Fact]
    public async Task APeerThatDiesMidAllReduceFailsTheOthersLongBeforeTheTimeout()
    {
        var timeout = TimeSpan.FromSeconds(30);
        var ranks = await NewRingAsync(3, timeout);
        try
        {
            await Task.WhenAll(ranks.Select(c => c.BarrierAsync())); // the ring is formed
            var vectors = WideRangeVectors(3, seed: 2, length: 1_000_000);
            var clock = Stopwatch.StartNew();
            var survivors = ranks.Take(2).Select(c => c.AllReduceInPlaceAsync(vectors[c.Rank], ReduceOperation.Sum)).ToList();
            await Task.Delay(200);
            ranks[2].Dispose(); // its connections close, as when its process dies
            foreach (var survivor in survivors)
            {
                var error = await Assert.ThrowsAsync<CollectiveException>(() => survivor.WaitAsync(timeout / 2));
                Assert.True(error.Message.Contains("closed", StringComparison.Ordinal), error.Message);
            }
            Assert.True(clock.Elapsed < timeout, $"the failure took {clock.Elapsed.TotalSeconds:F1} s");
            // A broken ring stays broken: the group is re-formed, never reused.
            var again = await Assert.ThrowsAsync<CollectiveException>(() => ranks[0].BarrierAsync());
            Assert.Contains("broken", again.Message);
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task AHungPeerFailsTheRingAfterTheCollectiveTimeoutAndAnAbortFailsItAtOnce()
    {
        var ranks = await NewRingAsync(3, TimeSpan.FromSeconds(1));
        try
        {
            await Task.WhenAll(ranks.Select(c => c.BarrierAsync()));
            // Rank 2 stays connected but never joins the all-reduce. Nothing closes a connection, so the first rank to
            // fail does so on the 1 s timeout; the other may then report the connection that rank closed.
            var vectors = WideRangeVectors(3, seed: 4);
            var waiting = ranks.Take(2).Select(c => c.AllReduceAsync(vectors[c.Rank], ReduceOperation.Sum)).ToList();
            var errors = new List<string>();
            foreach (var rank in waiting)
                errors.Add((await Assert.ThrowsAsync<CollectiveException>(() => rank.WaitAsync(TimeSpan.FromSeconds(20)))).Message);
            Assert.True(errors.Any(e => e.Contains("no progress on the ring for 1 s", StringComparison.Ordinal)), string.Join(" | ", errors));
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }

        var (group, aborted) = await NewRingWithKeyAsync(2, TimeSpan.FromMinutes(5));
        try
        {
            await Task.WhenAll(aborted.Select(c => c.BarrierAsync()));
            var blocked = aborted[0].BarrierAsync(); // rank 1 never comes
            await Task.Delay(100);
            await fixture.Grains.GetGrain<ICollectiveGroupGrain>(group).Abort("silo lost");
            // Far within the 5-minute timeout. Both ranks watch the abort: rank 0 sees it itself, or first sees rank 1
            // close its connection because rank 1 saw it (nothing else closes a connection here).
            var error = await Assert.ThrowsAsync<CollectiveException>(() => blocked.WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.True(error.Message.Contains("silo lost", StringComparison.Ordinal) || error.Message.Contains("saw the group aborted", StringComparison.Ordinal), error.Message);
        }
        finally
        {
            foreach (var rank in aborted) rank.Dispose();
        }
    }

    [Fact]
    public async Task ConnectionsWithAWrongTokenOrOfAnotherGenerationAreRefusedAndTheRingStillForms()
    {
        var (group, ranks) = await NewRingWithKeyAsync(2, TimeSpan.FromSeconds(20));
        try
        {
            // Both strays are queued at rank 1's listener before rank 0 connects, so rank 1 answers them first.
            var endpoint = ranks[1].LocalEndpoint!;
            var wrongToken = Stray(endpoint, new RingHello(group, RandomNumberGenerator.GetBytes(16), 0, 2));
            var staleGeneration = Stray(endpoint, new RingHello(group + "-g0", RandomNumberGenerator.GetBytes(16), 0, 2));
            var vectors = WideRangeVectors(2, seed: 8);

            var sums = await Task.WhenAll(ranks.Select(c => c.AllReduceAsync(vectors[c.Rank], ReduceOperation.Sum)));

            Assert.Contains("token does not match", await wrongToken);
            Assert.Contains("stale generation", await staleGeneration);
            foreach (var sum in sums) Assert.Equal(RankOrderedSum(vectors), sum);
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    /// <summary>Connects at once (queued in the listener's backlog), then offers the hello; returns the refusal reason.</summary>
    private static Task<string?> Stray(RingEndpoint endpoint, RingHello hello)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 20_000 };
        socket.Connect(endpoint.Host, endpoint.Port);
        return Task.Run(() =>
        {
            using var stream = new NetworkStream(socket, ownsSocket: true);
            return RingHandshake.Offer(stream, hello);
        });
    }

    private async Task<RingCollectiveCommunicator[]> NewRingAsync(int world, TimeSpan? timeout = null) =>
        (await NewRingWithKeyAsync(world, timeout ?? TimeSpan.FromSeconds(20))).Ranks;

    private Task<(string Group, RingCollectiveCommunicator[] Ranks)> NewRingWithKeyAsync(int world, TimeSpan timeout) =>
        RingTestGroups.NewAsync(fixture, world, timeout, Bucket, Piece);

    /// <summary>
    /// The documented order, derived here independently of the implementation: buckets of <see cref="Bucket"/>
    /// elements; bucket of length L split into n segments, segment s starting at ⌊L·s/n⌋; segment s summed starting with
    /// rank s+1 and going round the ring to rank s.
    /// </summary>
    internal static float[] ChainOrderedSum(float[][] vectors)
    {
        var world = vectors.Length;
        var length = vectors[0].Length;
        var sum = new float[length];
        for (var i = 0; i < length; i++)
        {
            var bucketStart = i / Bucket * Bucket;
            var bucketLength = Math.Min(Bucket, length - bucketStart);
            var segment = Enumerable.Range(0, world).Last(s => bucketStart + (long)bucketLength * s / world <= i);
            var value = vectors[(segment + 1) % world][i];
            for (var step = 2; step <= world; step++) value += vectors[(segment + step) % world][i];
            sum[i] = value;
        }
        return sum;
    }

    private static float[] RankOrderedSum(float[][] vectors)
    {
        var sum = (float[])vectors[0].Clone();
        foreach (var vector in vectors.Skip(1))
            for (var i = 0; i < sum.Length; i++) sum[i] += vector[i];
        return sum;
    }

    /// <summary>Values spread over many magnitudes, so the order of float additions changes results.</summary>
    internal static float[][] WideRangeVectors(int world, int seed, int length = Length)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, world).Select(_ => Enumerable.Range(0, length)
            .Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 8)))).ToArray()).ToArray();
    }
}
