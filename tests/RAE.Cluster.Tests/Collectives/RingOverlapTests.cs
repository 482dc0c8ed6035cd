using System.Diagnostics;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives;
using RAE.Grains.Collectives.Ring;
using RAE.Grains.Workers.Stage2;
using static RAE.Cluster.Tests.Stage2.DiTTestJobs;

namespace RAE.Cluster.Tests.Collectives;

/// <summary>The ring's all-reduce started while backward still writes the vector (PyTorch DDP's overlap).</summary>
[Collection(ClusterCollection.Name)]
public sealed class RingOverlapTests(ClusterFixture fixture)
{
    private const int Length = 2500;
    private const int Bucket = 1000;
    private const int Piece = 150;

    [Fact]
    public async Task FinishedBucketsAreReducedBeforeTheRestExistsAndTheResultIsThePlainOneBitForBit()
    {
        const int world = 3;
        var random = new Random(5);
        var final = Enumerable.Range(0, world).Select(_ => Enumerable.Range(0, Length)
            .Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 8)))).ToArray()).ToArray();
        var ranks = await NewRingAsync(world, TimeSpan.FromSeconds(20));
        try
        {
            var expected = await Task.WhenAll(ranks.Select(c => c.AllReduceAsync(final[c.Rank], ReduceOperation.Mean)));

            // Unfinished values are NaN: read too early, they would poison the result.
            var working = final.Select(_ => Enumerable.Repeat(float.NaN, Length).ToArray()).ToArray();
            var readiness = ranks.Select(_ => new GradientReadiness(Length)).ToArray();
            var reduces = ranks.Select(c => c.AllReduceInPlaceAsync(working[c.Rank], readiness[c.Rank], ReduceOperation.Mean)).ToArray();
            const int finished = 1234; // the first bucket and part of the second
            for (var rank = 0; rank < world; rank++)
            {
                Array.Copy(final[rank], working[rank], finished);
                readiness[rank].Advance(finished);
            }
            var clock = Stopwatch.StartNew();
            while (!Enumerable.Range(0, world).All(rank => working[rank].AsSpan(0, Bucket).SequenceEqual(expected[rank].AsSpan(0, Bucket))))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "the finished first bucket was not reduced while the rest was unfinished");
                await Task.Delay(10);
            }
            Assert.All(reduces, reduce => Assert.False(reduce.IsCompleted, "the all-reduce ended before the vector was finished"));

            for (var rank = 0; rank < world; rank++)
            {
                Array.Copy(final[rank], finished, working[rank], finished, Length - finished);
                readiness[rank].Complete();
            }
            await Task.WhenAll(reduces).WaitAsync(TimeSpan.FromSeconds(20));
            for (var rank = 0; rank < world; rank++) Assert.Equal(expected[rank], working[rank]);
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task AFailedBackwardEndsTheOverlappedAllReduceOnEveryRankLongBeforeTheTimeout()
    {
        var timeout = TimeSpan.FromSeconds(60);
        var ranks = await NewRingAsync(2, timeout);
        try
        {
            await Task.WhenAll(ranks.Select(c => c.BarrierAsync()));
            var readiness = ranks.Select(_ => new GradientReadiness(Length)).ToArray();
            var vectors = ranks.Select(_ => new float[Length]).ToArray();
            var reduces = ranks.Select(c => c.AllReduceInPlaceAsync(vectors[c.Rank], readiness[c.Rank], ReduceOperation.Mean)).ToArray();
            var clock = Stopwatch.StartNew();
            readiness[0].Fail(new InvalidOperationException("backward ran out of memory"));
            readiness[1].Complete(); // the other rank finishes its backward and finds its peer gone
            var failing = await Assert.ThrowsAsync<CollectiveException>(() => reduces[0].WaitAsync(timeout / 2));
            Assert.Contains("backward ran out of memory", failing.Message);
            var peer = await Assert.ThrowsAsync<CollectiveException>(() => reduces[1].WaitAsync(timeout / 2));
            Assert.True(clock.Elapsed < timeout / 4, $"the failure took {clock.Elapsed.TotalSeconds:F1} s ({peer.Message})");
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task DiTRanksThatAllReduceDuringBackwardGetThePlainStepsMeanBitForBit()
    {
        var spec = Spec(ranks: 2, accumulation: 2);
        var plain = CreateWorkers(spec);
        var overlapped = CreateWorkers(spec);
        var ranks = await NewRingAsync(2, TimeSpan.FromSeconds(60));
        try
        {
            for (long step = 1; step <= 2; step++)
            {
                // Both ways compute with the cluster's thread count: a test thread's count is whatever earlier tests left on
                // it, and a bias gradient's reduction order follows the thread count (it failed once at 1e-7 relative).
                var gradients = SiloArithmetic.Run(() => plain.Select(worker => worker.ComputeGradients(step).Gradients).ToArray());
                await Task.WhenAll(ranks.Select(c => c.AllReduceInPlaceAsync(gradients[c.Rank], ReduceOperation.Mean)));

                var vectors = overlapped.Select(worker => worker.OverlapVector!).ToArray();
                var readiness = vectors.Select(vector => new GradientReadiness(vector.Length)).ToArray();
                var reduces = ranks.Select(c => c.AllReduceInPlaceAsync(vectors[c.Rank], readiness[c.Rank], ReduceOperation.Mean)).ToArray();
                var reported = await Task.WhenAll(overlapped.Select((worker, rank) => Task.Factory.StartNew(() =>
                {
                    TorchSharp.torch.set_num_threads(SiloArithmetic.Threads);
                    var result = worker.ComputeGradients(step, readiness[rank]);
                    var duringBackward = readiness[rank].Ready;
                    readiness[rank].Complete();
                    Assert.Same(vectors[rank], result.Gradients);
                    return duringBackward;
                }, TaskCreationOptions.LongRunning)));
                await Task.WhenAll(reduces).WaitAsync(TimeSpan.FromSeconds(60));

                // Every block reported during backward: all but the embedders' group (finished with backward itself).
                Assert.All(reported, ready => Assert.True(ready > vectors[0].Length / 2 && ready < vectors[0].Length, $"backward reported {ready} of {vectors[0].Length}"));
                for (var rank = 0; rank < 2; rank++) Assert.Equal(gradients[rank], vectors[rank]);
                SiloArithmetic.Run(() =>
                {
                    for (var rank = 0; rank < 2; rank++)
                    {
                        plain[rank].ApplyUpdate(step, gradients[rank]);
                        overlapped[rank].ApplyUpdate(step, vectors[rank]);
                    }
                    return true;
                });
            }
            Assert.Equal(plain[0].GetParameters(), overlapped[1].GetParameters());
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
            foreach (var worker in plain.Concat(overlapped)) worker.Dispose();
        }
    }

    private async Task<RingCollectiveCommunicator[]> NewRingAsync(int world, TimeSpan timeout) =>
        (await RingTestGroups.NewAsync(fixture, world, timeout, Bucket, Piece)).Ranks;
}
