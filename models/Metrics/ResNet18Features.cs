using RAE.Models.Stage1.Encoders;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Metrics;

/// <summary>
/// The offline feature extractor behind <c>fd_resnet18</c>: the frozen ImageNet ResNet18 of the Stage 1 encoder (no
/// Inception weights are needed), its layer4 map averaged over space, 512-d float32. A Fréchet distance on these
/// features is reported as <see cref="MetricName"/> and is never comparable with (nor called) FID.
/// <para>
/// Images (uint8, NCHW or NHWC, 1 or 3 channels) are scaled to [0, 1], grey images repeated to RGB, resized to 224x224
/// (the featurizer's native size; bilinear, align_corners=False) and normalised as the encoder expects. Each image is
/// processed independently, so features do not depend on batch composition.
/// </para>
/// </summary>
public sealed class ResNet18Features : IDisposable
{
    public const string MetricName = "fd_resnet18";
    public const int InputSize = 224;
    public const int FeatureDimension = 512;

    private readonly ResNet18Encoder _encoder;

    private ResNet18Features(ResNet18Encoder encoder) => _encoder = encoder;

    /// <summary>Loads the featurizer's ONNX files (default: the ones shipped beside the application), layer4.</summary>
    public static ResNet18Features Load(string? modelPath = null, string? preprocessModelPath = null) =>
        new(ResNet18Encoder.Load(new ResNet18EncoderOptions(modelPath, preprocessModelPath, ResNetStage.Layer4)));

    /// <summary>Wraps an encoder built elsewhere; it must use layer4. Takes ownership.</summary>
    public static ResNet18Features FromEncoder(ResNet18Encoder encoder)
    {
        if (encoder.Stage != ResNetStage.Layer4)
            throw new ArgumentException($"fd_resnet18 uses the layer4 features; the encoder was built for {encoder.Stage}", nameof(encoder));
        return new ResNet18Features(encoder);
    }

    /// <summary>Features [B, 512] (float32) of one batch of uint8 images.</summary>
    public Tensor Extract(Tensor images)
    {
        using var guard = no_grad();
        using var scope = NewDisposeScope();
        var pixels = ToUnitRgbNchw(images);
        if (pixels.shape[2] != InputSize || pixels.shape[3] != InputSize)
            pixels = F.interpolate(pixels, [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        var mean = tensor(_encoder.ImageMean.ToArray(), [1, 3, 1, 1]);
        var std = tensor(_encoder.ImageStd.ToArray(), [1, 3, 1, 1]);
        var grid = _encoder.EncodeGrid((pixels - mean) / std);
        return grid.mean([2, 3]).MoveToOuterDisposeScope();
    }

    /// <summary>Features [N, 512] of uint8 images in batches of <paramref name="batchSize"/>.</summary>
    public Tensor Features(Tensor images, int batchSize)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        if (images.dim() != 4) throw new ArgumentException($"images must be 4-D (NCHW or NHWC), got [{string.Join(", ", images.shape)}]", nameof(images));
        using var scope = NewDisposeScope();
        var batches = new List<Tensor>();
        for (long start = 0; start < images.shape[0]; start += batchSize)
            batches.Add(Extract(images.narrow(0, start, Math.Min(batchSize, images.shape[0] - start))));
        return cat(batches, 0).MoveToOuterDisposeScope();
    }

    public void Dispose() => _encoder.Dispose();

    /// <summary>uint8 NCHW or NHWC (channels last when the last dimension is 1 or 3 and the second is not) → float NCHW RGB in [0, 1].</summary>
    private static Tensor ToUnitRgbNchw(Tensor images)
    {
        if (images.dim() != 4) throw new ArgumentException($"images must be 4-D (NCHW or NHWC), got [{string.Join(", ", images.shape)}]", nameof(images));
        if (images.dtype != ScalarType.Byte) throw new ArgumentException($"images must be uint8 (0..255), got {images.dtype}", nameof(images));
        var channelsLast = images.shape[3] is 1 or 3 && images.shape[1] is not (1 or 3);
        var nchw = channelsLast ? images.permute(0, 3, 1, 2) : images;
        if (nchw.shape[1] is not (1 or 3))
            throw new ArgumentException($"images must have 1 or 3 channels, got [{string.Join(", ", images.shape)}]", nameof(images));
        var pixels = nchw.to(ScalarType.Float32) / 255.0;
        return nchw.shape[1] == 1 ? pixels.expand(-1, 3, -1, -1).contiguous() : pixels;
    }
}
