namespace RAE.Configuration;

/// <summary>
/// <c>stage_2</c> (and <c>guidance.guidance_model</c>): the diffusion transformer class, its typed constructor params and an
/// optional checkpoint. The target is matched on its class name, so <c>stage2.models.DDT.DiTwDDTHead</c> and
/// <c>DiTwDDTHead</c> both select <see cref="DiTwDDTHeadParams"/>.
/// </summary>
public sealed record Stage2Config
{
    public const string DiTwDDTHeadTarget = "stage2.models.DDT.DiTwDDTHead";
    public const string LightningDiTTarget = "stage2.models.lightningDiT.LightningDiT";

    public string Target { get; init; } = DiTwDDTHeadTarget;

    public string? Ckpt { get; init; }

    public Stage2ModelParams Params { get; init; } = new DiTwDDTHeadParams();

    /// <summary>The <c>params</c> mapping exactly as written (after overrides), as plain values.</summary>
    public IReadOnlyDictionary<string, object?> RawParams { get; init; } = new Dictionary<string, object?>();

    internal static Stage2Config Parse(ConfigSection section)
    {
        var target = section.String("target", "");
        section.Require(target.Length > 0, "target", $"is required (for example '{DiTwDDTHeadTarget}')");
        var parameters = section.Section("params");
        Stage2ModelParams typed = Stage1Config.ClassName(target) switch
        {
            "DiTwDDTHead" => DiTwDDTHeadParams.Parse(parameters),
            "LightningDiT" => LightningDiTParams.Parse(parameters),
            _ => throw section.Error("target", $"'{target}' is not a known Stage-2 class (expected '{DiTwDDTHeadTarget}' or '{LightningDiTTarget}')"),
        };
        var config = new Stage2Config { Target = target, Ckpt = section.OptionalString("ckpt"), Params = typed, RawParams = section.Raw("params") };
        section.RejectUnknownKeys();
        return config;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder().Add("target", Target).AddIfSet("ckpt", Ckpt).Add("params", Params.ToYaml());
}

/// <summary>A value given per part of DiT^DH: [encoder (DiT), decoder (DDT head)]. A single number in YAML means both.</summary>
public readonly record struct EncoderDecoderPair(int Encoder, int Decoder)
{
    public static EncoderDecoderPair Both(int value) => new(value, value);

    internal static EncoderDecoderPair? Parse(ConfigSection section, string key)
    {
        if (section.OptionalLongList(key) is not { } values) return null;
        section.Require(values.Count is 1 or 2, key, $"expected one number or a pair [encoder, decoder], got {values.Count} values");
        section.Require(values.All(value => value is > 0 and <= int.MaxValue), key, "every value must be a positive integer");
        return new EncoderDecoderPair((int)values[0], (int)values[^1]);
    }

    public override string ToString() => $"[{Encoder}, {Decoder}]";
}

/// <summary>Constructor params shared by the Stage-2 classes (reference names in comments are the YAML keys).</summary>
public abstract record Stage2ModelParams
{
    public int InputSize { get; init; } = 16;
    public int InChannels { get; init; } = 768;
    public double MlpRatio { get; init; } = 4.0;
    public double ClassDropoutProb { get; init; } = 0.1;
    public int NumClasses { get; init; } = 1000;
    public bool UseQkNorm { get; init; }
    public bool UseSwiGlu { get; init; } = true;
    public bool UseRope { get; init; } = true;
    public bool UseRmsNorm { get; init; } = true;
    public bool WoShift { get; init; }

    internal abstract YamlMapBuilder ToYaml();

    /// <summary>Reads the shared keys into <paramref name="seed"/> and checks their ranges.</summary>
    private protected static T ParseCommon<T>(ConfigSection section, T seed) where T : Stage2ModelParams
    {
        var parsed = seed with
        {
            InputSize = section.Int("input_size", seed.InputSize),
            InChannels = section.Int("in_channels", seed.InChannels),
            MlpRatio = section.Double("mlp_ratio", seed.MlpRatio),
            ClassDropoutProb = section.Double("class_dropout_prob", seed.ClassDropoutProb),
            NumClasses = section.Int("num_classes", seed.NumClasses),
            UseQkNorm = section.Bool("use_qknorm", seed.UseQkNorm),
            UseSwiGlu = section.Bool("use_swiglu", seed.UseSwiGlu),
            UseRope = section.Bool("use_rope", seed.UseRope),
            UseRmsNorm = section.Bool("use_rmsnorm", seed.UseRmsNorm),
            WoShift = section.Bool("wo_shift", seed.WoShift),
        };
        section.Require(parsed.InputSize > 0, "input_size", "must be positive");
        section.Require(parsed.InChannels > 0, "in_channels", "must be positive");
        section.Require(parsed.MlpRatio > 0, "mlp_ratio", "must be positive");
        section.Require(parsed.ClassDropoutProb is >= 0 and < 1, "class_dropout_prob", $"must be in [0, 1), got {parsed.ClassDropoutProb}");
        section.Require(parsed.NumClasses > 0, "num_classes", "must be positive");
        return parsed;
    }

    private protected YamlMapBuilder CommonYaml(YamlMapBuilder builder) => builder
        .Add("input_size", InputSize)
        .Add("in_channels", InChannels)
        .Add("mlp_ratio", MlpRatio)
        .Add("class_dropout_prob", ClassDropoutProb)
        .Add("num_classes", NumClasses)
        .Add("use_qknorm", UseQkNorm)
        .Add("use_swiglu", UseSwiGlu)
        .Add("use_rope", UseRope)
        .Add("use_rmsnorm", UseRmsNorm)
        .Add("wo_shift", WoShift);

    private protected static void CheckHeads(ConfigSection section, string what, int hidden, int heads) =>
        section.Require(hidden % heads == 0, "num_heads", $"{what} hidden_size {hidden} is not divisible by its num_heads {heads}");
}

/// <summary><c>stage2.models.DDT.DiTwDDTHead</c> (spec §5.2). Defaults are the DiT^DH-XL values every reference config uses; the
/// model options (<c>DiTwDDTHeadOptions</c>) take theirs from here.</summary>
public sealed record DiTwDDTHeadParams : Stage2ModelParams
{
    public EncoderDecoderPair PatchSize { get; init; } = EncoderDecoderPair.Both(1);
    public EncoderDecoderPair HiddenSize { get; init; } = new(1152, 2048);
    public EncoderDecoderPair Depth { get; init; } = new(28, 2);
    public EncoderDecoderPair NumHeads { get; init; } = new(16, 16);
    public bool UsePosEmbed { get; init; } = true;

    internal static DiTwDDTHeadParams Parse(ConfigSection section)
    {
        var defaults = new DiTwDDTHeadParams();
        var parsed = ParseCommon(section, defaults) with
        {
            PatchSize = EncoderDecoderPair.Parse(section, "patch_size") ?? defaults.PatchSize,
            HiddenSize = EncoderDecoderPair.Parse(section, "hidden_size") ?? defaults.HiddenSize,
            Depth = EncoderDecoderPair.Parse(section, "depth") ?? defaults.Depth,
            NumHeads = EncoderDecoderPair.Parse(section, "num_heads") ?? defaults.NumHeads,
            UsePosEmbed = section.Bool("use_pos_embed", defaults.UsePosEmbed),
        };
        section.Require(parsed.InputSize % parsed.PatchSize.Encoder == 0 && parsed.InputSize % parsed.PatchSize.Decoder == 0,
            "patch_size", $"{parsed.PatchSize} does not divide input_size {parsed.InputSize}");
        CheckHeads(section, "encoder", parsed.HiddenSize.Encoder, parsed.NumHeads.Encoder);
        CheckHeads(section, "decoder", parsed.HiddenSize.Decoder, parsed.NumHeads.Decoder);
        section.RejectUnknownKeys();
        return parsed;
    }

    internal override YamlMapBuilder ToYaml()
    {
        var builder = new YamlMapBuilder();
        if (PatchSize.Encoder == PatchSize.Decoder) builder.Add("patch_size", PatchSize.Encoder);
        else builder.Add("patch_size", new[] { PatchSize.Encoder, PatchSize.Decoder });
        return CommonYaml(builder)
            .Add("hidden_size", new[] { HiddenSize.Encoder, HiddenSize.Decoder })
            .Add("depth", new[] { Depth.Encoder, Depth.Decoder })
            .Add("num_heads", new[] { NumHeads.Encoder, NumHeads.Decoder })
            .Add("use_pos_embed", UsePosEmbed);
    }
}

/// <summary><c>stage2.models.lightningDiT.LightningDiT</c> (spec §5.3), with its reference defaults.</summary>
public sealed record LightningDiTParams : Stage2ModelParams
{
    public int PatchSize { get; init; } = 1;
    public int HiddenSize { get; init; } = 1152;
    public int Depth { get; init; } = 28;
    public int NumHeads { get; init; } = 16;
    public bool LearnSigma { get; init; }
    /// <summary>Stored by the reference, never used.</summary>
    public bool UseGEmbed { get; init; }

    internal static LightningDiTParams Parse(ConfigSection section)
    {
        var parsed = ParseCommon(section, new LightningDiTParams()) with
        {
            PatchSize = section.Int("patch_size", 1),
            HiddenSize = section.Int("hidden_size", 1152),
            Depth = section.Int("depth", 28),
            NumHeads = section.Int("num_heads", 16),
            LearnSigma = section.Bool("learn_sigma", false),
            UseGEmbed = section.Bool("use_gembed", false),
        };
        section.Require(parsed.PatchSize > 0 && parsed.InputSize % parsed.PatchSize == 0, "patch_size",
            $"{parsed.PatchSize} must be positive and divide input_size {parsed.InputSize}");
        section.Require(parsed.HiddenSize > 0, "hidden_size", "must be positive");
        section.Require(parsed.Depth > 0, "depth", "must be positive");
        section.Require(parsed.NumHeads > 0, "num_heads", "must be positive");
        CheckHeads(section, "the", parsed.HiddenSize, parsed.NumHeads);
        section.RejectUnknownKeys();
        return parsed;
    }

    internal override YamlMapBuilder ToYaml() => CommonYaml(new YamlMapBuilder().Add("patch_size", PatchSize))
        .Add("hidden_size", HiddenSize)
        .Add("depth", Depth)
        .Add("num_heads", NumHeads)
        .Add("learn_sigma", LearnSigma)
        .Add("use_gembed", UseGEmbed);
}
