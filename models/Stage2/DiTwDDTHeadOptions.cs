using System.Text.Json;
using DiTwDDTHeadParams = RAE.Configuration.DiTwDDTHeadParams;
using EncoderDecoderPair = RAE.Configuration.EncoderDecoderPair;

namespace RAE.Models.Stage2;

/// <summary>
/// Constructor options of DiT^DH (reference <c>DiTwDDTHead</c>), reference names in the comments. Defaults are DiT^DH-XL
/// at 256 px. Patch size may differ between the encoder (s) and the head (x); the head grid must then hold a whole
/// multiple of the encoder's tokens (each encoder token conditions consecutive head tokens, as the reference's
/// DDTModulate repeats them).
/// </summary>
public sealed record DiTwDDTHeadOptions
{
    /// <summary>The defaults live once, in the configuration schema (<see cref="DiTwDDTHeadParams"/>).</summary>
    private static readonly DiTwDDTHeadParams Defaults = new();

    /// <summary>input_size: latent side length.</summary>
    public int InputSize { get; init; } = Defaults.InputSize;

    /// <summary>patch_size: int or [s, x].</summary>
    public EncoderDecoderPair PatchSize { get; init; } = Defaults.PatchSize;

    /// <summary>in_channels (= out_channels).</summary>
    public int InChannels { get; init; } = Defaults.InChannels;

    /// <summary>hidden_size [enc, dec].</summary>
    public EncoderDecoderPair HiddenSize { get; init; } = Defaults.HiddenSize;

    /// <summary>depth [enc, dec].</summary>
    public EncoderDecoderPair Depth { get; init; } = Defaults.Depth;

    /// <summary>num_heads: int or [enc, dec].</summary>
    public EncoderDecoderPair NumHeads { get; init; } = Defaults.NumHeads;

    public double MlpRatio { get; init; } = Defaults.MlpRatio;

    public double ClassDropoutProb { get; init; } = Defaults.ClassDropoutProb;

    public int NumClasses { get; init; } = Defaults.NumClasses;

    public bool UseQkNorm { get; init; } = Defaults.UseQkNorm;

    public bool UseSwiGlu { get; init; } = Defaults.UseSwiGlu;

    public bool UseRope { get; init; } = Defaults.UseRope;

    public bool UseRmsNorm { get; init; } = Defaults.UseRmsNorm;

    public bool WoShift { get; init; } = Defaults.WoShift;

    public bool UsePosEmbed { get; init; } = Defaults.UsePosEmbed;

    /// <summary>DiT^DH-XL: [1152, 2048], [28, 2], [16, 16].</summary>
    public static DiTwDDTHeadOptions XL { get; } = new();

    /// <summary>DiT^DH-S (the autoguidance model): [384, 2048], [12, 2], [6, 16].</summary>
    public static DiTwDDTHeadOptions S { get; } = new() { HiddenSize = new(384, 2048), Depth = new(12, 2), NumHeads = new(6, 16) };

    /// <summary>Reads a reference constructor-argument object (case.json "params", YAML params) by reference names.</summary>
    /// <summary>The options a validated <c>stage_2</c> (or guidance model) config section describes.</summary>
    public static DiTwDDTHeadOptions FromConfig(DiTwDDTHeadParams model) => new()
    {
        InputSize = model.InputSize,
        PatchSize = model.PatchSize,
        InChannels = model.InChannels,
        HiddenSize = model.HiddenSize,
        Depth = model.Depth,
        NumHeads = model.NumHeads,
        MlpRatio = model.MlpRatio,
        ClassDropoutProb = model.ClassDropoutProb,
        NumClasses = model.NumClasses,
        UseQkNorm = model.UseQkNorm,
        UseSwiGlu = model.UseSwiGlu,
        UseRope = model.UseRope,
        UseRmsNorm = model.UseRmsNorm,
        WoShift = model.WoShift,
        UsePosEmbed = model.UsePosEmbed,
    };

    public static DiTwDDTHeadOptions FromReferenceParams(JsonElement parameters)
    {
        var reader = new ReferenceParams(parameters, "DiTwDDTHead");
        reader.RejectUnknown("input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_ratio",
            "class_dropout_prob", "num_classes", "use_qknorm", "use_swiglu", "use_rope", "use_rmsnorm", "wo_shift", "use_pos_embed");
        var defaults = new DiTwDDTHeadOptions();
        return new DiTwDDTHeadOptions
        {
            InputSize = reader.Int("input_size", defaults.InputSize),
            PatchSize = reader.Pair("patch_size", defaults.PatchSize, allowSingle: true),
            InChannels = reader.Int("in_channels", defaults.InChannels),
            HiddenSize = reader.Pair("hidden_size", defaults.HiddenSize, allowSingle: true),
            Depth = reader.Pair("depth", defaults.Depth, allowSingle: false),
            NumHeads = reader.Pair("num_heads", defaults.NumHeads, allowSingle: true),
            MlpRatio = reader.Double("mlp_ratio", defaults.MlpRatio),
            ClassDropoutProb = reader.Double("class_dropout_prob", defaults.ClassDropoutProb),
            NumClasses = reader.Int("num_classes", defaults.NumClasses),
            UseQkNorm = reader.Bool("use_qknorm", defaults.UseQkNorm),
            UseSwiGlu = reader.Bool("use_swiglu", defaults.UseSwiGlu),
            UseRope = reader.Bool("use_rope", defaults.UseRope),
            UseRmsNorm = reader.Bool("use_rmsnorm", defaults.UseRmsNorm),
            WoShift = reader.Bool("wo_shift", defaults.WoShift),
            UsePosEmbed = reader.Bool("use_pos_embed", defaults.UsePosEmbed),
        };
    }

    /// <summary>Throws ArgumentException naming the first inconsistent option.</summary>
    public void Validate()
    {
        Require(InputSize > 0, $"input_size must be positive, got {InputSize}");
        Require(PatchSize.Encoder > 0 && PatchSize.Decoder > 0, $"patch_size must be positive, got {PatchSize}");
        Require(InputSize % PatchSize.Encoder == 0 && InputSize % PatchSize.Decoder == 0,
            $"input_size {InputSize} is not divisible by patch_size {PatchSize}");
        var encoderTokens = (long)(InputSize / PatchSize.Encoder) * (InputSize / PatchSize.Encoder);
        var decoderTokens = (long)(InputSize / PatchSize.Decoder) * (InputSize / PatchSize.Decoder);
        Require(decoderTokens % encoderTokens == 0,
            $"patch_size {PatchSize}: the head's {decoderTokens} tokens are not a multiple of the encoder's {encoderTokens}");
        Require(InChannels > 0, $"in_channels must be positive, got {InChannels}");
        Require(Depth.Encoder >= 0 && Depth.Decoder >= 0, $"depth must not be negative, got {Depth}");
        Require(NumHeads.Encoder > 0 && HiddenSize.Encoder % NumHeads.Encoder == 0,
            $"hidden_size {HiddenSize.Encoder} is not divisible by num_heads {NumHeads.Encoder}");
        Require(NumHeads.Decoder > 0 && HiddenSize.Decoder % NumHeads.Decoder == 0,
            $"hidden_size {HiddenSize.Decoder} is not divisible by num_heads {NumHeads.Decoder}");
        if (UseRope)
        {
            Require(HiddenSize.Encoder / NumHeads.Encoder % 4 == 0, $"RoPE needs an encoder head dim divisible by 4, got {HiddenSize.Encoder / NumHeads.Encoder}");
            Require(HiddenSize.Decoder / NumHeads.Decoder % 4 == 0, $"RoPE needs a head dim divisible by 4, got {HiddenSize.Decoder / NumHeads.Decoder}");
        }
        if (UsePosEmbed) Require(HiddenSize.Encoder % 4 == 0, $"the sin-cos table needs hidden_size divisible by 4, got {HiddenSize.Encoder}");
        Require(NumClasses > 0, $"num_classes must be positive, got {NumClasses}");
    }

    internal static void Require(bool condition, string message)
    {
        if (!condition) throw new ArgumentException(message);
    }
}
