using RAE.Configuration;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Discriminator;
using RAE.Models.Stage1.Encoders;
using RAE.Models.Stage1.Losses;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// Builds the frozen parts of a Stage 1 job from its configuration: the encoder (<c>encoder_cls</c> with its weights), the
/// perceptual loss (<c>gan.loss.perceptual</c>) and the discriminator (<c>gan.disc.arch.kind</c>). Every file the config names
/// is checked first, and a missing one is a <see cref="FileNotFoundException"/> naming its key.
/// </summary>
public static class DecoderComponents
{
    public static IRepresentationEncoder Encoder(RaeParams rae, Device device)
    {
        ArgumentNullException.ThrowIfNull(rae);
        if (rae.EncoderCls == RaeParams.ResNet18)
        {
            if (rae.EncoderParams.ModelPath is { } onnx && !File.Exists(onnx))
                throw new FileNotFoundException($"stage_1.params.encoder_params.model_path: the ResNet18 ONNX model {onnx} does not exist", onnx);
            return FrozenEncoders.ResNet18(rae, device);
        }
        var (key, folder) = rae.EncoderCls switch
        {
            RaeParams.Dinov2 => ("stage_1.params.encoder_params.dinov2_path", rae.EncoderParams.Dinov2Path),
            _ => ("stage_1.params.encoder_params.model_name", rae.EncoderParams.ModelName),
        };
        if (string.IsNullOrWhiteSpace(folder))
            throw new ArgumentException($"{key} is not set: the {rae.EncoderCls} encoder needs its Hugging Face model folder (nothing is downloaded)");
        if (!Directory.Exists(folder))
            throw new FileNotFoundException($"{key}: the {rae.EncoderCls} model folder {folder} does not exist (nothing is downloaded; supply the weights)", folder);
        return Stage1Encoders.FromPretrained(rae.EncoderCls, folder, device);
    }

    /// <summary>The perceptual loss when the config weights it, else null.</summary>
    public static IPerceptualLoss? Perceptual(GanLossConfig loss, Device device) =>
        loss.PerceptualWeight > 0 ? PerceptualLosses.Create(loss, device) : null;

    /// <summary>The discriminator when the config weights the GAN loss, else null; its heads are seeded from <paramref name="generator"/>.</summary>
    public static IDiscriminator? Discriminator(GanConfig gan, Device device, Generator generator)
    {
        if (gan.Loss.DiscWeight <= 0) return null;
        var arch = gan.Disc.Arch;
        IDiscriminator discriminator = arch.Kind == DiscriminatorArchConfig.ResNet18Heads
            ? ResNetHeadsDiscriminator.Create(new ResNetHeadsDiscriminatorOptions(arch.InputSize, Discriminators.HeadOptions(arch)), generator)
            : Discriminators.Create(Discriminators.Dino, arch, generator);
        if (discriminator is HeadsDiscriminator heads) heads.MoveTo(device);
        discriminator.SetTraining(false);
        return discriminator;
    }
}
