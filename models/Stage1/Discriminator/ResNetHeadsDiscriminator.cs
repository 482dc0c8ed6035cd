using RAE.Models.Stage1.Encoders;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Stage1.Discriminator;

/// <param name="InputSize">Images are bilinearly resized to this square size first (a multiple of 32; 224 by default, as the DINO disc).</param>
/// <param name="Heads">The head design shared with the DINO discriminator.</param>
public sealed record ResNetHeadsDiscriminatorOptions(int InputSize = 224, DiscriminatorHeadOptions? Heads = null)
{
    public DiscriminatorHeadOptions HeadOptions => Heads ?? new DiscriminatorHeadOptions();
}

/// <summary>
/// <c>disc: resnet18-heads</c>, the offline stand-in for the DINO discriminator, not the reference's design: the frozen
/// ImageNet ResNet18 of <see cref="ResNet18Encoder"/> replaces the DINO ViT, and its layer1..layer4 maps, flattened to
/// token sequences [B, C, h·w] (64, 128, 256, 512 channels), feed one <see cref="DiscriminatorHeads"/> head each (the
/// same spectral-norm convs, <see cref="BatchNormLocal"/> and circular padding). Images are in [-1, 1]. As in the
/// DINO discriminator, the backbone is outside the state dict (<c>heads.*</c> only) and gradients reach the images.
/// </summary>
public sealed class ResNetHeadsDiscriminator : HeadsDiscriminator
{
    public const string ConfigName = "resnet18-heads";
    private const int StageCount = 4;
    private const int Layer4Stride = 32;

    private readonly ResNet18Encoder _backbone;
    private readonly int _inputSize;

    /// <summary>Takes ownership of <paramref name="backbone"/> (disposed with the discriminator).</summary>
    public ResNetHeadsDiscriminator(ResNet18Encoder backbone, ResNetHeadsDiscriminatorOptions options, Generator? generator = null)
        : base(nameof(ResNetHeadsDiscriminator), backbone, DiscriminatorHeads.Create(
            backbone.Layout.Stages.Take(StageCount).Select(stage => stage.Channels).ToArray(), options.HeadOptions, generator))
    {
        var headOptions = options.HeadOptions;
        var layer4Side = options.InputSize / Layer4Stride;
        if (options.InputSize <= 0 || options.InputSize % Layer4Stride != 0)
            throw new ArgumentException($"resnet18-heads input size must be a positive multiple of {Layer4Stride}, got {options.InputSize}");
        if (layer4Side * layer4Side < headOptions.KernelSize / 2)
            throw new ArgumentException(
                $"resnet18-heads input size {options.InputSize} leaves {layer4Side * layer4Side} layer4 tokens, fewer than the circular padding {headOptions.KernelSize / 2} of ks {headOptions.KernelSize}");
        _backbone = backbone;
        _inputSize = options.InputSize;
        Options = options;
    }

    public ResNetHeadsDiscriminatorOptions Options { get; }

    /// <summary>Loads the ResNet18 ONNX weights shipped with the build (see <see cref="ResNet18Encoder.Load"/>).</summary>
    public static ResNetHeadsDiscriminator Create(ResNetHeadsDiscriminatorOptions options, Generator? generator = null,
        ResNet18EncoderOptions? encoderOptions = null) =>
        new(ResNet18Encoder.Load(encoderOptions), options, generator);

    /// <summary>The four stage maps as token sequences [B, C_s, h_s·w_s], gradients flowing to the images.</summary>
    public override IReadOnlyList<Tensor> Features(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"resnet18-heads expects [B, 3, H, W] images in [-1, 1], got [{string.Join(", ", images.shape)}]");
        using var scope = NewDisposeScope();
        var resized = images.shape[2] == _inputSize && images.shape[3] == _inputSize
            ? images
            : F.interpolate(images, [_inputSize, _inputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        var mean = tensor(_backbone.ImageMean.ToArray(), [1, 3, 1, 1], ScalarType.Float32, images.device);
        var std = tensor(_backbone.ImageStd.ToArray(), [1, 3, 1, 1], ScalarType.Float32, images.device);
        var normalised = ((resized.to(float32) + 1) * 0.5 - mean) / std;
        var stages = _backbone.ForwardStages(_backbone.ToBackboneInput(normalised), StageCount, trackInputGradient: true);
        var features = stages.Select(stage => stage.flatten(2).MoveToOuterDisposeScope()).ToList();
        return features;
    }
}
