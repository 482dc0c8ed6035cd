using RAE.Models.Data;
using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Data;

public sealed class LatentStatisticsTests
{
    [Fact]
    public void Merged_shard_moments_equal_a_direct_computation_in_any_order_and_grouping()
    {
        using var generator = new TorchSharp.torch.Generator(11);
        using var all = randn([37, 4, 3, 3], generator: generator).mul_(3).add_(100); // a large offset stresses cancellation
        using var expectedMean = all.to(ScalarType.Float64).mean([0L]);
        using var expectedVar = all.to(ScalarType.Float64).var(0, unbiased: false);
        var splits = new[] { (0, 10), (10, 11), (11, 30), (30, 37) };

        using var forward = LatentMoments.Empty([4, 3, 3]);
        foreach (var (from, to) in splits)
        {
            using var shard = all[from..to];
            forward.Add(shard);
        }
        using var reversed = LatentMoments.Empty([4, 3, 3]);
        foreach (var (from, to) in splits.Reverse())
        {
            using var shard = all[from..to];
            using var moments = LatentMoments.Of(shard);
            reversed.Merge(moments);
        }
        using var single = LatentMoments.Of(all);

        foreach (var moments in new[] { forward, reversed, single })
        {
            Assert.Equal(37, moments.Count);
            var (mean, variance) = moments.Statistics();
            using (mean)
            using (variance)
            {
                AssertRelativelyClose(expectedMean, mean, 1e-6);
                AssertRelativelyClose(expectedVar, variance, 1e-6);
            }
        }
    }

    [Fact]
    public void Stat_pt_round_trips_through_the_torch_save_reader_and_safetensors()
    {
        using var latents = arange(2 * 2 * 2 * 2, ScalarType.Float32).reshape(2, 2, 2, 2);
        using var moments = LatentMoments.Of(latents);
        var statPath = Path.Combine(TestImages.TemporaryFolder(), "stat.pt");
        var safetensorsPath = Path.ChangeExtension(statPath, ".safetensors");

        moments.SaveStatistics(statPath, safetensorsPath);

        using var stats = CheckpointLoader.LoadLatentStats(statPath, [2, 2, 2]);
        Assert.True(stats.HasMean && stats.HasVar);
        Assert.Equal(ScalarType.Float32, stats.Mean.dtype);
        Assert.Equal(4f, stats.Mean[0, 0, 0].item<float>()); // (0 + 8) / 2
        Assert.Equal(16f, stats.Var[1, 1, 1].item<float>()); // values 7 and 15: population variance 16
        var copy = SafeTensors.Load(safetensorsPath);
        Assert.True(copy["mean"].eq(stats.Mean).all().item<bool>());
        Assert.True(copy["var"].eq(stats.Var).all().item<bool>());
        foreach (var tensor in copy.Values) tensor.Dispose();
    }

    [Fact]
    public void Momentum_rule_follows_the_reference_update_and_rank_combination()
    {
        using var batch = tensor(new float[] { 1, 3 }).reshape(2, 1, 1, 1);
        using var rank0 = new MomentumLatentStats([1, 1, 1]);
        rank0.Add(batch);
        // mean 0.9·0 + 0.1·2 = 0.2; var 0.9·1 + 0.1·1 = 1.0 (biased batch variance of {1, 3} is 1)
        Assert.Equal(0.2f, rank0.RunningMean[0, 0, 0].item<float>(), 6);
        Assert.Equal(1.0f, rank0.RunningVar[0, 0, 0].item<float>(), 6);

        using var rank1 = new MomentumLatentStats([1, 1, 1]);
        var (mean, variance) = MomentumLatentStats.CombineRanks([rank0, rank1]);
        using (mean)
        using (variance)
        {
            // mean (0.2 + 0)/2 = 0.1; var (1 + 1)/2 + (0.04 + 0)/2 − 0.01 = 1.01
            Assert.Equal(0.1f, mean[0, 0, 0].item<float>(), 6);
            Assert.Equal(1.01f, variance[0, 0, 0].item<float>(), 6);
        }
    }

    [Fact]
    public void Mismatched_shapes_and_empty_statistics_are_clear_errors()
    {
        using var moments = LatentMoments.Empty([2, 2, 2]);
        Assert.Contains("no latents", Assert.Throws<InvalidOperationException>(() => moments.Statistics()).Message);
        using var other = LatentMoments.Empty([3, 2, 2]);
        Assert.Contains("[3, 2, 2]", Assert.Throws<ArgumentException>(() => moments.Merge(other)).Message);
    }

    private static void AssertRelativelyClose(Tensor expected, Tensor actual, double tolerance)
    {
        using var scope = NewDisposeScope();
        var difference = actual.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
        var scale = expected.abs().max().item<double>();
        Assert.True(difference <= tolerance * scale, $"max difference {difference} exceeds {tolerance} relative to {scale}");
    }
}
