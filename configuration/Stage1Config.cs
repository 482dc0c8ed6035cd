namespace RAE.Configuration;

/// <summary><c>stage_1</c>: the representation autoencoder (<c>stage1.RAE</c>), its constructor params and optional checkpoint.</summary>
public sealed record Stage1Config
{
    public const string RaeTarget = "stage1.RAE";

    public string Target { get; init; } = RaeTarget;

    public string? Ckpt { get; init; }

    public RaeParams Params { get; init; } = new();

    /// <summary>The <c>params</c> mapping exactly as written (after overrides), as plain values.</summary>
    public IReadOnlyDictionary<string, object?> RawParams { get; init; } = new Dictionary<string, object?>();

    internal static Stage1Config Parse(ConfigSection section)
    {
        var target = section.String("target", "");
        section.Require(target.Length > 0, "target", "is required (the reference class, 'stage1.RAE')");
        section.Require(ClassName(target) == "RAE", "target", $"'{target}' is not a known Stage-1 class (expected '{RaeTarget}')");
        var config = new Stage1Config
        {
            Target = target,
            Ckpt = section.OptionalString("ckpt"),
            Params = RaeParams.Parse(section.Section("params")),
            RawParams = section.Raw("params"),
        };
        section.RejectUnknownKeys();
        return config;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder().Add("target", Target).AddIfSet("ckpt", Ckpt).Add("params", Params.ToYaml());

    internal static string ClassName(string target) => target[(target.LastIndexOf('.') + 1)..];
}

/// <summary>Constructor arguments of <c>stage1.RAE</c> (spec §2.1), with the reference defaults.</summary>
public sealed record RaeParams
{
    public const string Dinov2 = "Dinov2withNorm";
    public const string SigLip2 = "SigLIP2wNorm";
    public const string Mae = "MAEwNorm";
    /// <summary>Our offline encoder (ONNX ResNet18 featurizer), not in the reference.</summary>
    public const string ResNet18 = "ResNet18";

    /// <summary>Encoder class → the stride of its token grid (ViT patch size, or the ResNet's default layer4 stride; see <see cref="EncoderPatchSize"/>).</summary>
    public static readonly IReadOnlyDictionary<string, int> EncoderPatchSizes = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        [Dinov2] = 14, [SigLip2] = 16, [Mae] = 16, [ResNet18] = 32,
    };

    public string EncoderCls { get; init; } = Dinov2;
    public string? EncoderConfigPath { get; init; }
    public int EncoderInputSize { get; init; } = 224;
    public EncoderParams EncoderParams { get; init; } = new();
    public string? DecoderConfigPath { get; init; }
    public int DecoderPatchSize { get; init; } = 16;
    public string? PretrainedDecoderPath { get; init; }
    public double NoiseTau { get; init; } = 0.8;
    public bool ReshapeTo2d { get; init; } = true;
    public string? NormalizationStatPath { get; init; }
    public double Eps { get; init; } = 1e-5;

    internal static RaeParams Parse(ConfigSection section)
    {
        var encoder = section.Choice("encoder_cls", Dinov2, EncoderPatchSizes.Keys.ToArray());
        var parsed = new RaeParams
        {
            EncoderCls = encoder,
            EncoderConfigPath = section.OptionalString("encoder_config_path"),
            EncoderInputSize = section.Int("encoder_input_size", 224),
            EncoderParams = EncoderParams.Parse(section.Section("encoder_params"), encoder),
            DecoderConfigPath = section.OptionalString("decoder_config_path"),
            DecoderPatchSize = section.Int("decoder_patch_size", 16),
            PretrainedDecoderPath = section.OptionalString("pretrained_decoder_path"),
            NoiseTau = section.Double("noise_tau", 0.8),
            ReshapeTo2d = section.Bool("reshape_to_2d", true),
            NormalizationStatPath = section.OptionalString("normalization_stat_path"),
            Eps = section.Double("eps", 1e-5),
        };
        var patch = parsed.EncoderPatchSize;
        section.Require(parsed.EncoderInputSize > 0 && parsed.EncoderInputSize % patch == 0, "encoder_input_size",
            $"{parsed.EncoderInputSize} must be a positive multiple of the {encoder} patch size {patch}");
        section.Require(parsed.DecoderPatchSize > 0, "decoder_patch_size", "must be positive");
        section.Require(parsed.NoiseTau >= 0, "noise_tau", $"must be >= 0, got {parsed.NoiseTau}");
        section.Require(parsed.Eps > 0, "eps", $"must be > 0, got {parsed.Eps}");
        section.RejectUnknownKeys();
        return parsed;
    }

    /// <summary>Stride of the encoder's token grid: the ViT patch size, or the chosen ResNet18 stage's total stride.</summary>
    public int EncoderPatchSize => EncoderCls == ResNet18 ? EncoderParams.ResNetStageStride : EncoderPatchSizes[EncoderCls];

    /// <summary>Side of the encoder's token grid, for example 16 for DINOv2 at 224 px.</summary>
    public int TokenGridSize => EncoderInputSize / EncoderPatchSize;

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("encoder_cls", EncoderCls)
        .Add("encoder_config_path", EncoderConfigPath)
        .Add("encoder_input_size", EncoderInputSize)
        .Add("encoder_params", EncoderParams.ToYaml(EncoderCls))
        .Add("decoder_config_path", DecoderConfigPath)
        .Add("decoder_patch_size", DecoderPatchSize)
        .Add("pretrained_decoder_path", PretrainedDecoderPath)
        .Add("noise_tau", NoiseTau)
        .Add("reshape_to_2d", ReshapeTo2d)
        .Add("normalization_stat_path", NormalizationStatPath)
        .Add("eps", Eps);
}

/// <summary>
/// <c>encoder_params</c>: which keys are allowed depends on the encoder class — Dinov2withNorm: dinov2_path, normalize;
/// SigLIP2wNorm: model_name, num_tokens; MAEwNorm: model_name; ResNet18 (ours): model_path (ONNX file; null = the packaged
/// featurizer), normalize, stage (the residual stage whose feature map is the latent grid: layer1..layer4 or 1..4, default layer4).
/// </summary>
public sealed record EncoderParams
{
    public const int DefaultResNetStage = 4;

    /// <summary>ResNet18 stage → (stride of its feature map, its channels), torchvision's layer1..layer4.</summary>
    public static readonly IReadOnlyList<(int Stride, int Channels)> ResNetStages = [(4, 64), (8, 128), (16, 256), (32, 512)];

    public string? Dinov2Path { get; init; }
    public string? ModelName { get; init; }
    public string? ModelPath { get; init; }
    public bool Normalize { get; init; } = true;
    public int NumTokens { get; init; } = 256;

    /// <summary>ResNet18's residual stage (1..4) whose feature map is the latent grid.</summary>
    public int ResNetStage { get; init; } = DefaultResNetStage;

    public int ResNetStageStride => ResNetStages[ResNetStage - 1].Stride;

    public int ResNetStageChannels => ResNetStages[ResNetStage - 1].Channels;

    internal static EncoderParams Parse(ConfigSection section, string encoder)
    {
        var parsed = encoder switch
        {
            RaeParams.Dinov2 => new EncoderParams { Dinov2Path = section.OptionalString("dinov2_path"), Normalize = section.Bool("normalize", true) },
            RaeParams.SigLip2 => new EncoderParams { ModelName = section.OptionalString("model_name"), NumTokens = section.Int("num_tokens", 256) },
            RaeParams.Mae => new EncoderParams { ModelName = section.OptionalString("model_name") },
            _ => new EncoderParams
            {
                ModelPath = section.OptionalString("model_path"), Normalize = section.Bool("normalize", true), ResNetStage = ParseResNetStage(section),
            },
        };
        section.Require(parsed.NumTokens > 0, "num_tokens", "must be positive");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml(string encoder) => encoder switch
    {
        RaeParams.Dinov2 => new YamlMapBuilder().Add("dinov2_path", Dinov2Path).Add("normalize", Normalize),
        RaeParams.SigLip2 => new YamlMapBuilder().Add("model_name", ModelName).Add("num_tokens", NumTokens),
        RaeParams.Mae => new YamlMapBuilder().Add("model_name", ModelName),
        _ => ResNetStage == DefaultResNetStage
            ? new YamlMapBuilder().Add("model_path", ModelPath).Add("normalize", Normalize)
            : new YamlMapBuilder().Add("model_path", ModelPath).Add("normalize", Normalize).Add("stage", $"layer{ResNetStage}"),
    };

    private static int ParseResNetStage(ConfigSection section)
    {
        var text = section.OptionalString("stage");
        if (text is null) return DefaultResNetStage;
        var digits = text.StartsWith("layer", StringComparison.OrdinalIgnoreCase) ? text["layer".Length..] : text;
        var valid = int.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var stage)
            && stage >= 1 && stage <= ResNetStages.Count;
        section.Require(valid, "stage", $"'{text}' is not a ResNet18 stage (layer1, layer2, layer3, layer4 or 1..4)");
        return stage;
    }
}
