using RAE.Configuration;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>
/// The frozen representation encoder a <c>stage_1</c> section names: <c>ResNet18</c> (the packaged ML.NET featurizer,
/// offline, the feature map of <c>encoder_params.stage</c> (layer4 by default) as the latent grid, or <c>encoder_params.model_path</c>), or a Hugging Face folder for
/// <c>Dinov2withNorm</c> (<c>dinov2_path</c>), <c>SigLIP2wNorm</c> and <c>MAEwNorm</c> (<c>model_name</c>). The caller owns
/// the result and disposes it (<see cref="IDisposable"/>).
/// </summary>
public static class FrozenEncoders
{
    /// <summary>LayerNorm eps of the ViT encoders' final affine-free norm, used for ResNet18's <c>normalize: true</c> too.</summary>
    public const double TokenNormEps = 1e-6;

    public static IRepresentationEncoder FromConfig(RaeParams parameters, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.EncoderCls == RaeParams.ResNet18)
            return ResNet18(parameters, device);
        var folder = (parameters.EncoderCls == RaeParams.Dinov2 ? parameters.EncoderParams.Dinov2Path : parameters.EncoderParams.ModelName)
            ?? throw new ArgumentException($"stage_1.params.encoder_params names no model folder for {parameters.EncoderCls} (dinov2_path or model_name)");
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"the {parameters.EncoderCls} encoder needs a Hugging Face model folder on this machine; '{folder}' is not one (stage_1.params.encoder_params)");
        return Stage1Encoders.FromPretrained(parameters.EncoderCls, folder, device);
    }

    /// <summary>
    /// The ResNet18 encoder at <c>encoder_params.stage</c>, in eval mode, its tokens standardised when <c>normalize</c> is set
    /// (the same latent space for the encode job, Stage 1 training and sampling).
    /// </summary>
    public static IRepresentationEncoder ResNet18(RaeParams parameters, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var stage = (ResNetStage)parameters.EncoderParams.ResNetStage;
        var resnet = ResNet18Encoder.Load(new ResNet18EncoderOptions(parameters.EncoderParams.ModelPath, Stage: stage), device);
        if (resnet.PatchSize != parameters.EncoderPatchSize || resnet.HiddenSize != parameters.EncoderParams.ResNetStageChannels)
        {
            resnet.Dispose();
            throw new InvalidDataException($"the ResNet18 model's {stage} has stride {resnet.PatchSize} and {resnet.HiddenSize} channels; " +
                $"the configuration expects {parameters.EncoderPatchSize} and {parameters.EncoderParams.ResNetStageChannels}");
        }
        resnet.eval();
        return parameters.EncoderParams.Normalize ? new TokenNormalizedEncoder(resnet, TokenNormEps) : resnet;
    }
}

/// <summary>
/// An encoder whose tokens are standardised over their channels (LayerNorm without affine parameters), the "withNorm" of
/// the reference's ViT encoders, applied here to an encoder that has no final norm of its own (ResNet18's <c>normalize</c>).
/// </summary>
public sealed class TokenNormalizedEncoder(IRepresentationEncoder inner, double eps) : IRepresentationEncoder, IDisposable
{
    public int PatchSize => inner.PatchSize;

    public int HiddenSize => inner.HiddenSize;

    public IReadOnlyList<float> ImageMean => inner.ImageMean;

    public IReadOnlyList<float> ImageStd => inner.ImageStd;

    public Tensor Encode(Tensor images)
    {
        using var noGrad = no_grad();
        using var tokens = inner.Encode(images);
        return nn.functional.layer_norm(tokens, [tokens.shape[^1]], eps: eps);
    }

    public void Dispose() => (inner as IDisposable)?.Dispose();
}
