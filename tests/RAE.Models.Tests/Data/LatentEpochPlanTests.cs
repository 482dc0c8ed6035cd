using RAE.Models.Data;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Data;

/// <summary>The epoch plan of Stage 2 on latents: DistributedSampler order, split by rank, independent of the rank count.</summary>
public sealed class LatentEpochPlanTests
{
    private const long Size = 43;
    private const int GlobalBatch = 8;
    private const long Seed = 5;

    [Fact]
    public void GlobalBatchIsTheNextSlicesOfTheSeededPermutationWhateverTheRankCount()
    {
        var stepsPerEpoch = Size / GlobalBatch;
        for (var step = 1L; step <= 2 * stepsPerEpoch + 1; step++)
        {
            var epoch = (step - 1) / stepsPerEpoch;
            using var generator = new Generator((ulong)(Seed + epoch));
            using var permutation = randperm(Size, generator: generator, dtype: ScalarType.Int64);
            var order = permutation.data<long>().ToArray();
            var offset = (step - 1) % stepsPerEpoch * GlobalBatch;
            var expected = order[(int)offset..(int)(offset + GlobalBatch)];
            foreach (var world in new[] { 1, 2, 4, 8 })
            {
                var bySlot = new long[GlobalBatch];
                Array.Fill(bySlot, -1);
                for (var rank = 0; rank < world; rank++)
                {
                    var plan = new LatentEpochPlan(Size, GlobalBatch, world, rank, Seed);
                    Assert.Equal(new DataPosition(epoch, (step - 1) % stepsPerEpoch, Seed + epoch), plan.PositionOf(step));
                    foreach (var sample in plan.Samples(step, 0, plan.LocalBatch))
                    {
                        Assert.Equal(-1, bySlot[sample.GlobalSlot]);
                        bySlot[sample.GlobalSlot] = sample.DatasetIndex;
                    }
                }
                Assert.Equal(expected, bySlot);
            }
        }
    }

    [Fact]
    public void RankShareIsWhatDistributedSamplerWithDropLastGivesThatRank()
    {
        const int world = 3;
        const int globalBatch = 6;
        for (var rank = 0; rank < world; rank++)
        {
            var plan = new LatentEpochPlan(Size, globalBatch, world, rank, Seed);
            var sampler = new DistributedEpochSampler(Size, world, rank, Seed, dropLast: true);
            for (var epoch = 0L; epoch < 2; epoch++)
            {
                var batches = sampler.Batches(epoch, globalBatch / world).ToList();
                Assert.Equal(plan.StepsPerEpoch, batches.Count);
                for (var k = 0; k < batches.Count; k++)
                {
                    var step = epoch * plan.StepsPerEpoch + k + 1;
                    Assert.Equal(batches[k], plan.Samples(step, 0, plan.LocalBatch).Select(s => s.DatasetIndex));
                    // Micro-batches are consecutive pieces of the rank's share.
                    Assert.Equal(batches[k][1..], plan.Samples(step, 1, 1).Select(s => s.DatasetIndex));
                }
            }
        }
    }

    [Fact]
    public void AnEpochUsesEverySampleAtMostOnceAndDropsTheRemainder()
    {
        var plan = new LatentEpochPlan(Size, GlobalBatch, 2, 1, Seed);
        var other = new LatentEpochPlan(Size, GlobalBatch, 2, 0, Seed);
        Assert.Equal(5, plan.StepsPerEpoch);
        var seen = Enumerable.Range(1, 5).SelectMany(step => plan.Samples(step, 0, 4).Concat(other.Samples(step, 0, 4))).Select(s => s.DatasetIndex).ToList();
        Assert.Equal(40, seen.Count);
        Assert.Equal(40, seen.Distinct().Count());
        Assert.All(seen, index => Assert.InRange(index, 0, Size - 1));
        // Step 6 starts epoch 1 with the next permutation.
        Assert.Equal(new DataPosition(1, 0, Seed + 1), plan.PositionOf(6));
        Assert.NotEqual(plan.Samples(1, 0, 4).Select(s => s.DatasetIndex), plan.Samples(6, 0, 4).Select(s => s.DatasetIndex));
    }

    [Fact]
    public void DatasetSmallerThanTheGlobalBatchIsRefusedNamingBothNumbers()
    {
        var error = Assert.Throws<ArgumentException>(() => new LatentEpochPlan(6, 8, 1, 0, Seed));
        Assert.Contains("6 samples", error.Message);
        Assert.Contains("global batch 8", error.Message);
        Assert.Throws<ArgumentException>(() => new LatentEpochPlan(40, 8, 3, 0, Seed));
    }
}
