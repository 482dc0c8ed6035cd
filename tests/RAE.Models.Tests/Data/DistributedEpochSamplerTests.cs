using RAE.Models.Data;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Data;

public sealed class DistributedEpochSamplerTests
{
    [Fact]
    public void One_rank_sees_torch_randperm_seeded_with_seed_plus_epoch()
    {
        var sampler = new DistributedEpochSampler(10, worldSize: 1, rank: 0, seed: 3);

        using var generator = new Generator(3 + 2);
        using var expected = randperm(10, generator: generator, dtype: ScalarType.Int64);
        Assert.Equal(expected.data<long>().ToArray(), sampler.Indices(2));
        Assert.NotEqual(sampler.Indices(1), sampler.Indices(2));
        Assert.Equal(sampler.Indices(1), new DistributedEpochSampler(10, 1, 0, 3).Indices(1));
    }

    [Fact]
    public void Ranks_interleave_the_padded_permutation_without_drop_last()
    {
        var full = new DistributedEpochSampler(10, 1, 0, 0).Indices(0);
        var ranks = Enumerable.Range(0, 3).Select(rank => new DistributedEpochSampler(10, 3, rank, 0)).ToArray();

        Assert.All(ranks, sampler => Assert.Equal(4, sampler.SamplesPerRank));
        // padded to 12 by repeating the first two; rank r takes positions r, r+3, r+6, r+9
        var padded = full.Concat(full.Take(2)).ToArray();
        for (var rank = 0; rank < 3; rank++)
            Assert.Equal(Enumerable.Range(0, 4).Select(i => padded[rank + 3 * i]), ranks[rank].Indices(0));
    }

    [Fact]
    public void Drop_last_cuts_the_tail_and_ranks_are_disjoint()
    {
        var ranks = Enumerable.Range(0, 3).Select(rank => new DistributedEpochSampler(10, 3, rank, 0, dropLast: true)).ToArray();

        Assert.All(ranks, sampler => Assert.Equal(3, sampler.SamplesPerRank));
        var all = ranks.SelectMany(sampler => sampler.Indices(4)).ToArray();
        Assert.Equal(9, all.Distinct().Count());
        Assert.Equal(new DistributedEpochSampler(10, 1, 0, 0).Indices(4).Take(9).Order(), all.Order());
    }

    [Fact]
    public void Batches_drop_the_partial_last_batch()
    {
        var sampler = new DistributedEpochSampler(11, 1, 0, 9);

        var batches = sampler.Batches(0, 4).ToList();

        Assert.Equal(2, batches.Count);
        Assert.Equal(2, sampler.BatchesPerEpoch(4));
        Assert.Equal(sampler.Indices(0).Take(8), batches.SelectMany(batch => batch));
    }

    [Fact]
    public void Bad_arguments_are_named()
    {
        Assert.Contains("rank 2", Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedEpochSampler(10, 2, 2, 0)).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedEpochSampler(0, 1, 0, 0)).Message);
    }

    [Fact]
    public void Latent_moments_survive_serialisation()
    {
        using var latents = randn(5, 2, 2, 2);
        using var moments = LatentMoments.Of(latents);

        using var reread = LatentMoments.FromBytes(moments.ToBytes(), "moments");

        Assert.Equal(5, reread.Count);
        Assert.True(reread.Mean.eq(moments.Mean).all().item<bool>());
        Assert.True(reread.SumOfSquaredDeviations.eq(moments.SumOfSquaredDeviations).all().item<bool>());
    }
}
