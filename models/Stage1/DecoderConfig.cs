namespace RAE.Models.Stage1;

/// <summary>
/// Hyper-parameters of <see cref="GeneralDecoder"/> in ViT-MAE config terms. <see cref="HiddenSize"/> is the decoder
/// <i>input</i> width (the encoder's latent dim), <see cref="DecoderHiddenSize"/> its transformer width.
/// </summary>
public sealed record DecoderConfig(
    int HiddenSize,
    int DecoderHiddenSize,
    int DecoderNumHiddenLayers,
    int DecoderNumAttentionHeads,
    int DecoderIntermediateSize,
    int PatchSize,
    int ImageSize,
    double LayerNormEps = 1e-12,
    string HiddenAct = "gelu",
    bool QkvBias = true,
    int NumChannels = 3)
{
    /// <summary>Side of the token grid the decoder is built for (image_size / patch_size).</summary>
    public int GridSize => ImageSize / PatchSize;

    public int NumPatches => GridSize * GridSize;

    /// <summary>Values per token: patch_size² · num_channels.</summary>
    public int PixelsPerToken => PatchSize * PatchSize * NumChannels;

    /// <summary>configs/decoder/ViTB: 768 wide, 12 layers, 12 heads, MLP 3072 (256 px, p 16, 768 latent).</summary>
    public static DecoderConfig ViTB => new(768, 768, 12, 12, 3072, 16, 256);

    /// <summary>configs/decoder/ViTL: 1024 wide, 24 layers, 16 heads, MLP 4096.</summary>
    public static DecoderConfig ViTL => new(768, 1024, 24, 16, 4096, 16, 256);

    /// <summary>configs/decoder/ViTXL (all released decoders): 1152 wide, 28 layers, 16 heads, MLP 4096.</summary>
    public static DecoderConfig ViTXL => new(768, 1152, 28, 16, 4096, 16, 256);

    /// <summary>A preset by name: ViTB, ViTL or ViTXL (case-insensitive).</summary>
    public static DecoderConfig Preset(string name) => name.ToUpperInvariant() switch
    {
        "VITB" => ViTB,
        "VITL" => ViTL,
        "VITXL" => ViTXL,
        _ => throw new ArgumentException($"unknown decoder preset '{name}' (ViTB, ViTL, ViTXL)", nameof(name)),
    };

    /// <summary>Reads a ViT-MAE style config.json (missing keys take transformers' ViTMAEConfig defaults).</summary>
    public static DecoderConfig FromJson(HfConfig config)
    {
        var result = new DecoderConfig(
            HiddenSize: config.GetInt("hidden_size", 768),
            DecoderHiddenSize: config.GetInt("decoder_hidden_size", 512),
            DecoderNumHiddenLayers: config.GetInt("decoder_num_hidden_layers", 8),
            DecoderNumAttentionHeads: config.GetInt("decoder_num_attention_heads", 16),
            DecoderIntermediateSize: config.GetInt("decoder_intermediate_size", 2048),
            PatchSize: config.GetInt("patch_size", 16),
            ImageSize: config.GetInt("image_size", 224),
            LayerNormEps: config.GetDouble("layer_norm_eps", 1e-12),
            HiddenAct: config.GetString("hidden_act", "gelu"),
            QkvBias: config.GetBool("qkv_bias", true),
            NumChannels: config.GetInt("num_channels", 3));
        result.Validate(config.Source);
        return result;
    }

    /// <summary>Reads a ViT-MAE style config.json, given as the file or, as the reference configs give it, as a folder holding one.</summary>
    public static DecoderConfig FromFile(string configJsonPath) => FromJson(HfConfig.Load(ResolveConfigFile(configJsonPath)));

    /// <summary>The config.json that decoder_config_path names: the path itself, or config.json inside it when it is a folder.</summary>
    public static string ResolveConfigFile(string path) => Directory.Exists(path) ? Path.Combine(path, "config.json") : path;

    /// <summary>
    /// The RAE overrides (spec §2.1): hidden_size := latent dim, patch_size := decoder patch size,
    /// image_size := decoder_patch_size · √base_patches. The file's image_size/patch_size are ignored.
    /// </summary>
    public DecoderConfig WithRaeOverrides(int latentDim, int decoderPatchSize, int basePatches)
    {
        var grid = (int)Math.Round(Math.Sqrt(basePatches));
        if (grid * grid != basePatches) throw new ArgumentException($"base patch count {basePatches} is not a square", nameof(basePatches));
        var result = this with { HiddenSize = latentDim, PatchSize = decoderPatchSize, ImageSize = decoderPatchSize * grid };
        result.Validate("RAE decoder overrides");
        return result;
    }

    public void Validate(string source)
    {
        if (HiddenSize <= 0 || DecoderHiddenSize <= 0 || DecoderNumHiddenLayers <= 0 || DecoderIntermediateSize <= 0 || PatchSize <= 0 || NumChannels <= 0)
            throw new InvalidDataException($"{source}: decoder sizes must be positive ({this})");
        if (DecoderNumAttentionHeads <= 0 || DecoderHiddenSize % DecoderNumAttentionHeads != 0)
            throw new InvalidDataException($"{source}: decoder_hidden_size {DecoderHiddenSize} is not divisible by decoder_num_attention_heads {DecoderNumAttentionHeads}");
        if (ImageSize % PatchSize != 0)
            throw new InvalidDataException($"{source}: image_size {ImageSize} is not divisible by patch_size {PatchSize}");
        if (DecoderHiddenSize % 4 != 0)
            throw new InvalidDataException($"{source}: decoder_hidden_size {DecoderHiddenSize} must be divisible by 4 for the 2-D sin-cos table");
        Activations.Resolve(HiddenAct, source);
    }
}
