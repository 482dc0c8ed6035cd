using RAE.Models.IO;
using RAE.Models.Metrics;
using RAE.Models.Verification;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class FrechetDistanceReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void FrechetDistanceCaseMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("frechet_distance"));
        var sets = new[] { "wellcond", "d64", "nearly_identical", "identical", "singular", "zero_covariance", "illconditioned", "psd_rank_deficient", "identical_negative" };
        var expected = sets.SelectMany(set => new[] { $"{set}.fd_rae_gfid", $"{set}.fd_torch_fidelity_0_3_0", $"{set}.tr_covmean_sqrtm" })
            .Concat(["wellcond.sigma1", "wellcond.mu1_f32", "singular.sigma2", "ref_stats_example.fd_rae_gfid_vs_wellcond1"]).ToArray();
        TransportReferenceAssertions.AssertAllPass(results, expected);
        foreach (var result in results) output.WriteLine($"{result.Name}: abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3} (tolerance {result.Tolerance:g3})");
        var worst = results.MaxBy(r => r.MaxRelativeError / r.Tolerance)!;
        output.WriteLine($"{results.Count} outputs, worst against its tolerance {worst.Name}: {worst.MaxRelativeError:g3} (tolerance {worst.Tolerance:g3})");
    }

    [Fact]
    public void FloatThirtyTwoMeanIsBitExactWithNumpy()
    {
        using var io = new FixtureTensors(Path.Combine(Fixtures.Case("frechet_distance"), "io.safetensors"));
        using var moments = FeatureMoments.FromFeatures(io["wellcond.features1"]);
        using var ours = moments.MeanFloat32();
        Assert.Equal(0L, ours.ne(io["wellcond.mu1_f32"]).sum().item<long>());
        using var streamed = FeatureMoments.Empty(16);
        foreach (var (start, length) in new[] { (0L, 7L), (7L, 128L), (135L, 165L) }) streamed.Add(io["wellcond.features1"].narrow(0, start, length));
        using var streamedMean = streamed.MeanFloat32();
        Assert.Equal(0L, streamedMean.ne(io["wellcond.mu1_f32"]).sum().item<long>());
    }

    [Fact]
    public void StreamedBatchesGiveTheStatisticsOfAllFeaturesAtOnce()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(5);
        var features = randn([203, 12], generator: generator) * 3 + 1;
        using var whole = FeatureMoments.FromFeatures(features);
        using var streamed = FeatureMoments.Empty(12);
        using var otherHalf = FeatureMoments.Empty(12);
        streamed.Add(features[..70]);
        streamed.Add(features[70..71]);
        otherHalf.Add(features[71..150]);
        otherHalf.Add(features[150..]);
        streamed.Merge(otherHalf);
        Assert.Equal(203, streamed.Count);
        using var expected = whole.ToStatistics();
        using var actual = streamed.ToStatistics();
        Assert.True(actual.Mu.allclose(expected.Mu, rtol: 1e-12, atol: 1e-12));
        Assert.True(actual.Sigma.allclose(expected.Sigma, rtol: 1e-12, atol: 1e-12));
        Assert.True(streamed.MeanFloat32().allclose(whole.MeanFloat32(), rtol: 1e-6, atol: 1e-6));
        // np.cov with ddof 1, written out.
        var centred = features.to(ScalarType.Float64) - features.to(ScalarType.Float64).mean([0]);
        Assert.True(actual.Sigma.allclose(centred.t().matmul(centred) / 202.0, rtol: 1e-12, atol: 1e-12));
    }

    [Fact]
    public void MomentsOutliveTheDisposeScopesTheyWereUpdatedIn()
    {
        using var moments = FeatureMoments.Empty(3);
        for (var batch = 0; batch < 2; batch++)
        {
            using var scope = NewDisposeScope();
            moments.Add(randn([5, 3], generator: new Generator((ulong)batch)));
        }
        using var statistics = moments.ToStatistics();
        Assert.Equal(10, moments.Count);
        Assert.Equal([3L, 3L], statistics.Sigma.shape);
        Assert.True(statistics.Sigma.isfinite().all().item<bool>());
    }

    [Fact]
    public void GfidClampsRoundingNoiseAtZeroWhileTorchFidelityDoesNot()
    {
        using var scope = NewDisposeScope();
        var features = randn([40, 6], generator: new Generator(3));
        using var moments = FeatureMoments.FromFeatures(features);
        using var statistics = moments.ToStatistics();
        var unclamped = FrechetDistance.TorchFidelity(statistics.Mu, statistics.Sigma, statistics.Mu, statistics.Sigma);
        Assert.True(Math.Abs(unclamped) < 1e-12);
        Assert.True(FrechetDistance.Gfid(statistics.Mu, statistics.Sigma, statistics.Mu, statistics.Sigma) >= 0);
        var shifted = statistics.Mu + 2.0;
        Assert.Equal(6 * 4.0, FrechetDistance.Gfid(statistics.Mu, statistics.Sigma, shifted, statistics.Sigma), 9);
    }

    [Fact]
    public void NonFiniteCovarianceGivesNaNNotAnException()
    {
        using var scope = NewDisposeScope();
        var mu = zeros(4, dtype: ScalarType.Float64);
        var sigma = eye(4, dtype: ScalarType.Float64);
        var broken = sigma.clone();
        broken[1, 1] = tensor(double.NaN);
        Assert.True(double.IsNaN(FrechetDistance.Gfid(mu, broken, mu, sigma)));
        Assert.True(double.IsNaN(FrechetDistance.TorchFidelity(mu, broken, mu, sigma)));
    }

    [Fact]
    public void BadInputIsAClearError()
    {
        using var scope = NewDisposeScope();
        var mu = zeros(4, dtype: ScalarType.Float64);
        var sigma = eye(4, dtype: ScalarType.Float64);
        var error = Assert.Throws<ArgumentException>(() => FrechetDistance.Gfid(mu, sigma, zeros(5, dtype: ScalarType.Float64), eye(5, dtype: ScalarType.Float64)));
        Assert.Contains("different feature dimensions", error.Message);
        Assert.Throws<ArgumentException>(() => FrechetDistance.Gfid(mu, eye(3, dtype: ScalarType.Float64), mu, sigma));
        using var one = FeatureMoments.FromFeatures(ones(1, 4));
        Assert.Contains("at least 2", Assert.Throws<InvalidOperationException>(() => one.ToStatistics()).Message);
        Assert.Throws<ArgumentException>(() => FeatureMoments.FromFeatures(ones(4)));
        using var moments = FeatureMoments.Empty(4);
        Assert.Contains("dimension 3", Assert.Throws<ArgumentException>(() => moments.Add(ones(2, 3))).Message);
    }
}

/// <summary>The tensors of a fixture's safetensors file, disposed together.</summary>
internal sealed class FixtureTensors(string path) : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = SafeTensors.Load(path);

    public Tensor this[string name] => _tensors[name];

    public void Dispose()
    {
        foreach (var tensor in _tensors.Values) tensor.Dispose();
    }
}
