using RAE.Models.Nn;

namespace RAE.Models.Stage2;

/// <summary>
/// Matrix-multiply FLOPs (2 per multiply-add) of one DiT^DH forward pass per sample: every Linear/patch-embed at the
/// token count it is applied to, plus attention's QKᵀ and AV. Element-wise work is not counted (the usual MFU convention).
/// A training step (forward + backward) is taken as 3× the forward.
/// </summary>
public static class ModelFlops
{
    public static double ForwardPerSample(DiTwDDTHeadOptions options)
    {
        double encoderTokens = Math.Pow(options.InputSize / options.PatchSize.Encoder, 2);
        double decoderTokens = Math.Pow(options.InputSize / options.PatchSize.Decoder, 2);
        double e = options.HiddenSize.Encoder, d = options.HiddenSize.Decoder, c = options.InChannels;
        double pe = options.PatchSize.Encoder, pd = options.PatchSize.Decoder;
        var modulationWidth = options.WoShift ? 4 : 6;

        var flops = 2 * encoderTokens * c * pe * pe * e            // s_embedder
                    + 2 * decoderTokens * c * pd * pd * d          // x_embedder
                    + 2 * (512 * e + e * e);                       // t_embedder MLP
        flops += options.Depth.Encoder * (Block(encoderTokens, e, options) + 2 * modulationWidth * e * e);  // adaLN once per sample
        if (options.HiddenSize.Encoder != options.HiddenSize.Decoder) flops += 2 * encoderTokens * e * d;   // s_projector
        flops += options.Depth.Decoder * (Block(decoderTokens, d, options) + 2 * encoderTokens * modulationWidth * d * d); // per-token adaLN
        flops += 2 * encoderTokens * d * 2 * d + 2 * decoderTokens * d * pd * pd * c; // final adaLN (per condition token) and linear
        return flops;
    }

    public static double TrainingStepPerSample(DiTwDDTHeadOptions options) => 3 * ForwardPerSample(options);

    private static double Block(double tokens, double width, DiTwDDTHeadOptions options)
    {
        var attention = 2 * tokens * width * 3 * width + 2 * 2 * tokens * tokens * width + 2 * tokens * width * width;
        double mlp = options.UseSwiGlu
            ? 2 * tokens * 3 * width * SwiGLUFFN.BlockHiddenSize((long)width, options.MlpRatio)
            : 2 * tokens * 2 * width * (long)(width * options.MlpRatio);
        return attention + mlp;
    }
}
