using RAE.Models.Metrics;
using RAE.Models.Verification;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class ReconstructionMetricsReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void ReconMetricsCaseMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("recon_metrics"));
        foreach (var result in results) output.WriteLine($"{result.Name}: abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3}");
        var sets = new[] { "main", "nonsquare", "quirk_max_le_1", "all_black" };
        var expected = sets.SelectMany(set => new[]
        {
            $"{set}.psnr", $"{set}.ssim", $"{set}.mse_per_image", $"{set}.psnr_per_image", $"{set}.ssim_per_image", $"{set}.ssim_map0", $"{set}.divided_by_255",
        }).Append("ssim_kernel").ToArray();
        TransportReferenceAssertions.AssertAllPass(results, expected);
        Assert.Equal(expected.Length, results.Count);
    }

    [Fact]
    public void IdenticalImagesScoreOneHundredDecibelsAndSsimOne()
    {
        using var scope = NewDisposeScope();
        var images = randint(0, 256, [3, 16, 16, 3], generator: new Generator(1)).to(ScalarType.Byte);
        var scores = ReconstructionMetrics.Evaluate(images, images, batchSize: 2);
        Assert.Equal(100f, scores.Psnr, 3);
        Assert.Equal(1f, scores.Ssim, 5);
        Assert.All(scores.ReferenceDividedBy255, Assert.True);
    }

    [Fact]
    public void InvertedImagesHaveNegativeSsimAndLowPsnr()
    {
        using var scope = NewDisposeScope();
        var images = randint(0, 256, [2, 16, 16, 3], generator: new Generator(2)).to(ScalarType.Byte);
        var inverted = (255 - images.to(ScalarType.Int32)).to(ScalarType.Byte);
        var scores = ReconstructionMetrics.Evaluate(images, inverted, batchSize: 2);
        Assert.True(scores.Ssim < 0, $"ssim {scores.Ssim}");
        Assert.True(scores.Psnr < 10, $"psnr {scores.Psnr}");
    }

    [Fact]
    public void MismatchedOrTinyInputIsAClearError()
    {
        using var scope = NewDisposeScope();
        var a = zeros([2, 16, 16, 3], dtype: ScalarType.Byte);
        Assert.Contains("same shape", Assert.Throws<ArgumentException>(() => ReconstructionMetrics.Evaluate(a, zeros([3, 16, 16, 3], dtype: ScalarType.Byte), 2)).Message);
        var tiny = zeros([1, 5, 5, 3], dtype: ScalarType.Byte);
        Assert.Contains("at least 6x6", Assert.Throws<ArgumentException>(() => ReconstructionMetrics.Evaluate(tiny, tiny, 1)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ReconstructionMetrics.Evaluate(a, a, 0));
    }
}
