using System.Text.Json;

namespace RAE.Models.Stage2;

/// <summary>Constructor options of the plain LightningDiT (reference <c>stage2.models.lightningDiT.LightningDiT</c>). Defaults: DiT-XL, 256 px.</summary>
public sealed record LightningDiTOptions
{
    public int InputSize { get; init; } = 16;

    public int PatchSize { get; init; } = 1;

    public int InChannels { get; init; } = 768;

    public int HiddenSize { get; init; } = 1152;

    public int Depth { get; init; } = 28;

    public int NumHeads { get; init; } = 16;

    public double MlpRatio { get; init; } = 4.0;

    public double ClassDropoutProb { get; init; } = 0.1;

    public int NumClasses { get; init; } = 1000;

    /// <summary>learn_sigma: the final layer emits 2·in_channels and forward keeps the first half.</summary>
    public bool LearnSigma { get; init; }

    public bool UseQkNorm { get; init; }

    public bool UseSwiGlu { get; init; } = true;

    public bool UseRope { get; init; } = true;

    public bool UseRmsNorm { get; init; } = true;

    public bool WoShift { get; init; }

    /// <summary>use_gembed: stored by the reference and never used.</summary>
    public bool UseGembed { get; init; }

    public int OutChannels => LearnSigma ? 2 * InChannels : InChannels;

    public static LightningDiTOptions FromReferenceParams(JsonElement parameters)
    {
        var reader = new ReferenceParams(parameters, "LightningDiT");
        reader.RejectUnknown("input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_ratio",
            "class_dropout_prob", "num_classes", "learn_sigma", "use_qknorm", "use_swiglu", "use_rope", "use_rmsnorm", "wo_shift", "use_gembed");
        var defaults = new LightningDiTOptions();
        return new LightningDiTOptions
        {
            InputSize = reader.Int("input_size", defaults.InputSize),
            PatchSize = reader.Int("patch_size", defaults.PatchSize),
            InChannels = reader.Int("in_channels", defaults.InChannels),
            HiddenSize = reader.Int("hidden_size", defaults.HiddenSize),
            Depth = reader.Int("depth", defaults.Depth),
            NumHeads = reader.Int("num_heads", defaults.NumHeads),
            MlpRatio = reader.Double("mlp_ratio", defaults.MlpRatio),
            ClassDropoutProb = reader.Double("class_dropout_prob", defaults.ClassDropoutProb),
            NumClasses = reader.Int("num_classes", defaults.NumClasses),
            LearnSigma = reader.Bool("learn_sigma", defaults.LearnSigma),
            UseQkNorm = reader.Bool("use_qknorm", defaults.UseQkNorm),
            UseSwiGlu = reader.Bool("use_swiglu", defaults.UseSwiGlu),
            UseRope = reader.Bool("use_rope", defaults.UseRope),
            UseRmsNorm = reader.Bool("use_rmsnorm", defaults.UseRmsNorm),
            WoShift = reader.Bool("wo_shift", defaults.WoShift),
            UseGembed = reader.Bool("use_gembed", defaults.UseGembed),
        };
    }

    public void Validate()
    {
        DiTwDDTHeadOptions.Require(InputSize > 0 && PatchSize > 0 && InputSize % PatchSize == 0,
            $"input_size {InputSize} is not divisible by patch_size {PatchSize}");
        DiTwDDTHeadOptions.Require(InChannels > 0, $"in_channels must be positive, got {InChannels}");
        DiTwDDTHeadOptions.Require(Depth >= 0, $"depth must not be negative, got {Depth}");
        DiTwDDTHeadOptions.Require(NumHeads > 0 && HiddenSize % NumHeads == 0, $"hidden_size {HiddenSize} is not divisible by num_heads {NumHeads}");
        if (UseRope) DiTwDDTHeadOptions.Require(HiddenSize / NumHeads % 4 == 0, $"RoPE needs a head dim divisible by 4, got {HiddenSize / NumHeads}");
        DiTwDDTHeadOptions.Require(HiddenSize % 4 == 0, $"the sin-cos table needs hidden_size divisible by 4, got {HiddenSize}");
        DiTwDDTHeadOptions.Require(NumClasses > 0, $"num_classes must be positive, got {NumClasses}");
    }
}
