using RAE.Models.Stage1.Encoders;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>
/// The offline perceptual loss (<c>gan.loss.perceptual: resnet18</c>): an LPIPS-style distance on the frozen ImageNet
/// ResNet18 of ML.NET's DnnImageFeaturizer (the ONNX that <see cref="ResNet18Encoder"/> reads). It is not LPIPS: there are
/// no learned <c>lin</c> layers (no such weights exist for this network), so, like LPIPS's uncalibrated baseline
/// (<c>lpips=False</c>), each level contributes the channel sum of its squared differences, averaged spatially, and the
/// five levels (the stem after its ReLU, then the ends of layer1..layer4) are summed with equal weights.
/// <para>
/// Inputs are RGB images in [−1,1] of sides that are multiples of 32 (the layer4 stride). They are mapped to what the ONNX
/// network expects, BGR pixels in [0, 255] minus the featurizer's per-channel mean (the average of its mean image, so that
/// any size works). Every feature map is unit-normalised over channels as LPIPS does. Parameters are frozen and the batch
/// norms always use their running statistics, so train/eval mode changes nothing; gradients reach the inputs.
/// </para>
/// </summary>
public sealed class ResNet18PerceptualLoss : nn.Module<Tensor, Tensor, Tensor>, IPerceptualLoss
{
    /// <summary>Stem, layer1, layer2, layer3, layer4.</summary>
    public const int LevelCount = 5;

    /// <summary>Image sides must be multiples of this (the cumulative stride of layer4).</summary>
    public const int SizeMultiple = 32;

    // sqrt(Σx² + ε²) instead of LPIPS's sqrt(Σx²) + ε: the same value wherever a feature vector is not ~0, but a finite
    // gradient where a ReLU map is all zeros across channels (sqrt's derivative at 0 would make it NaN).
    private const double NormalizeEpsSquared = 1e-20;

    private readonly ResNet18Encoder backbone;
    private readonly Tensor pixel_mean_bgr;

    /// <summary>Wraps an already loaded encoder; it must subtract the per-channel mean (any size), which is checked.</summary>
    public ResNet18PerceptualLoss(ResNet18Encoder backbone) : base(nameof(ResNet18PerceptualLoss))
    {
        ArgumentNullException.ThrowIfNull(backbone);
        this.backbone = backbone;
        var meanBgr = backbone.ImageMean.Reverse().Select(mean => 255f * mean).ToArray();
        pixel_mean_bgr = tensor(meanBgr, [1, 3, 1, 1]);
        register_buffer(nameof(pixel_mean_bgr), pixel_mean_bgr, persistent: false);
        RegisterComponents();
        foreach (var parameter in parameters()) parameter.requires_grad = false;
        eval();
    }

    /// <summary>Loads the featurizer's ONNX files (null paths = the copies beside the application, as for the encoder).</summary>
    public static ResNet18PerceptualLoss Load(string? modelPath = null, string? preprocessModelPath = null, Device? device = null)
    {
        var options = new ResNet18EncoderOptions(modelPath, preprocessModelPath, ResNetStage.Layer4, ResNetMeanSubtraction.PerChannel);
        var loss = new ResNet18PerceptualLoss(ResNet18Encoder.Load(options));
        if (device is not null) loss.to(device);
        return loss;
    }

    public string Name => "resnet18";

    public override Tensor forward(Tensor in0, Tensor in1) => PerSample(in0, in1);

    public Tensor Loss(Tensor in0, Tensor in1)
    {
        using var perSample = PerSample(in0, in1);
        return perSample.mean();
    }

    public Tensor PerSample(Tensor in0, Tensor in1)
    {
        if (in0.dim() != 4 || in0.shape[1] != 3 || !in0.shape.SequenceEqual(in1.shape))
            throw new ArgumentException(
                $"the ResNet18 perceptual loss expects two image batches [B,3,H,W] of one shape, got [{string.Join(",", in0.shape)}] and [{string.Join(",", in1.shape)}]");
        if (in0.shape[2] % SizeMultiple != 0 || in0.shape[3] % SizeMultiple != 0)
            throw new ArgumentException($"the ResNet18 perceptual loss needs image sides that are multiples of {SizeMultiple}, got {in0.shape[2]}x{in0.shape[3]}");
        using var scope = NewDisposeScope();
        var features0 = backbone.StemAndStages(ToBackboneInput(in0));
        var features1 = backbone.StemAndStages(ToBackboneInput(in1));
        Tensor? total = null;
        for (var level = 0; level < LevelCount; level++)
        {
            var diff = (NormalizeChannels(features0[level]) - NormalizeChannels(features1[level])).pow(2);
            var contribution = diff.sum([1], keepdim: true).mean([2, 3], keepdim: true);
            total = total is null ? contribution : total + contribution;
        }
        return total!.MoveToOuterDisposeScope();
    }

    /// <summary>RGB in [−1,1] → BGR in [0, 255] minus the per-channel mean.</summary>
    private Tensor ToBackboneInput(Tensor images)
    {
        using var bgr = images.flip(1);
        using var pixels = (bgr + 1.0) * 127.5;
        return pixels - pixel_mean_bgr;
    }

    private static Tensor NormalizeChannels(Tensor features)
    {
        using var squares = features.pow(2).sum([1], keepdim: true);
        using var norm = (squares + NormalizeEpsSquared).sqrt();
        return features / norm;
    }
}
