using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class ResNet18FeaturesTests
{
    [Fact]
    public void FeaturesArePooledLayer4PerImageWhateverTheLayoutOrBatch()
    {
        using var features = ResNet18Features.Load();
        using var scope = NewDisposeScope();
        var grey = randint(0, 256, [3, 28, 28, 1], generator: new Generator(8)).to(ScalarType.Byte);
        var batched = features.Features(grey, batchSize: 3);
        Assert.Equal([3L, ResNet18Features.FeatureDimension], batched.shape);
        Assert.True(batched.isfinite().all().item<bool>());
        Assert.True(batched.min().item<float>() >= 0, "layer4 ends in a ReLU, so its spatial means are non-negative");
        var oneByOne = features.Features(grey, batchSize: 1);
        Assert.True(oneByOne.allclose(batched, rtol: 1e-4, atol: 1e-5), "features depend on the batch");
        var asRgbNchw = grey.permute(0, 3, 1, 2).expand(-1, 3, -1, -1).contiguous();
        Assert.True(features.Features(asRgbNchw, batchSize: 3).allclose(batched, rtol: 1e-5, atol: 1e-6), "grey NHWC and RGB NCHW differ");
        Assert.True((batched[0] - batched[1]).abs().max().item<float>() > 1e-3, "different images gave the same features");
    }

    [Fact]
    public void FloatImagesAreAClearError()
    {
        using var features = ResNet18Features.Load();
        var error = Assert.Throws<ArgumentException>(() => features.Extract(zeros(1, 3, 28, 28)));
        Assert.Contains("uint8", error.Message);
    }
}

public sealed class FeatureDistancesTests
{
    [Fact]
    public void FdResNet18OfASetAgainstItsOwnStatisticsIsZeroAndAgainstOtherImagesIsNot()
    {
        using var features = ResNet18Features.Load();
        using var scope = NewDisposeScope();
        var images = randint(0, 256, [4, 28, 28, 1], generator: new Generator(9)).to(ScalarType.Byte);
        using var moments = FeatureDistances.Moments(batch => features.Features(batch, 2), images, batchSize: 2, ResNet18Features.FeatureDimension);
        using var statistics = moments.ToStatistics();
        // N = 4 < D = 512: the covariances are singular, so "zero" is judged on the scale of the traces (eval-spec §4.3).
        var trace = statistics.Sigma.trace().item<double>();
        var itself = FeatureDistances.FdResNet18(features, images, statistics, batchSize: 4);
        Assert.True(itself >= 0 && itself < 1e-6 * trace, $"fd_resnet18 of a set against itself: {itself} (trace {trace})");
        var darker = (images.to(ScalarType.Int32) / 4).to(ScalarType.Byte);
        var other = FeatureDistances.FdResNet18(features, darker, statistics, batchSize: 4);
        Assert.True(other > 1e-2 * trace, $"fd_resnet18 of darker images: {other} (trace {trace})");
        using var inceptionSized = new RAE.Models.IO.FidStatistics(zeros(2048, dtype: ScalarType.Float64), eye(2048, dtype: ScalarType.Float64));
        Assert.Contains("2048-d", Assert.Throws<ArgumentException>(() => FeatureDistances.FdResNet18(features, images, inceptionSized, 4)).Message);
    }
}
