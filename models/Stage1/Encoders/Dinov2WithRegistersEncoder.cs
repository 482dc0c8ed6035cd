using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>Hyper-parameters of a transformers <c>Dinov2WithRegistersConfig</c> (missing keys take its defaults).</summary>
public sealed record Dinov2Config(
    int HiddenSize = 768,
    int NumHiddenLayers = 12,
    int NumAttentionHeads = 12,
    int IntermediateSize = 3072,
    int PatchSize = 16,
    int ImageSize = 224,
    int NumChannels = 3,
    double LayerNormEps = 1e-6,
    string HiddenAct = "gelu",
    bool QkvBias = true,
    double LayerScaleValue = 1.0,
    int NumRegisterTokens = 4) : IHfVisionConfig
{
    public int PretrainGrid => ImageSize / PatchSize;

    public static Dinov2Config FromJson(HfConfig config)
    {
        if (config.GetBool("use_swiglu_ffn", false))
            throw new NotSupportedException($"{config.Source}: use_swiglu_ffn=true (DINOv2 giant) is not supported");
        var hidden = config.GetInt("hidden_size", 768);
        return new Dinov2Config(
            HiddenSize: hidden,
            NumHiddenLayers: config.GetInt("num_hidden_layers", 12),
            NumAttentionHeads: config.GetInt("num_attention_heads", 12),
            IntermediateSize: (int)(hidden * config.GetDouble("mlp_ratio", 4)),
            PatchSize: config.GetInt("patch_size", 16),
            ImageSize: config.GetInt("image_size", 224),
            NumChannels: config.GetInt("num_channels", 3),
            LayerNormEps: config.GetDouble("layer_norm_eps", 1e-6),
            HiddenAct: config.GetString("hidden_act", "gelu"),
            QkvBias: config.GetBool("qkv_bias", true),
            LayerScaleValue: config.GetDouble("layerscale_value", 1.0),
            NumRegisterTokens: config.GetInt("num_register_tokens", 4));
    }
}

/// <summary>transformers <c>Dinov2WithRegistersLayerScale</c>: a per-channel gain named <c>lambda1</c>.</summary>
public sealed class Dinov2LayerScale : nn.Module<Tensor, Tensor>
{
    private readonly Parameter lambda1;

    public Dinov2LayerScale(int width, double initialValue) : base(nameof(Dinov2LayerScale))
    {
        lambda1 = new Parameter(full(width, initialValue));
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden) => hidden * lambda1;
}

/// <summary>transformers <c>Dinov2WithRegistersMLP</c>: fc1, activation, fc2.</summary>
public sealed class Dinov2Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly Func<Tensor, Tensor> _activation;

    public Dinov2Mlp(int width, int hidden, Func<Tensor, Tensor> activation) : base(nameof(Dinov2Mlp))
    {
        fc1 = nn.Linear(width, hidden);
        fc2 = nn.Linear(hidden, width);
        _activation = activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var hidden = fc1.forward(x);
        using var activated = _activation(hidden);
        return fc2.forward(activated);
    }
}

/// <summary>transformers <c>Dinov2WithRegistersLayer</c>: h += ls1·Attn(norm1(h)); h += ls2·MLP(norm2(h)).</summary>
public sealed class Dinov2Layer : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly HfAttention attention;
    private readonly Dinov2LayerScale layer_scale1;
    private readonly LayerNorm norm2;
    private readonly Dinov2Mlp mlp;
    private readonly Dinov2LayerScale layer_scale2;

    public Dinov2Layer(Dinov2Config config) : base(nameof(Dinov2Layer))
    {
        var width = config.HiddenSize;
        norm1 = nn.LayerNorm(width, config.LayerNormEps);
        attention = new HfAttention(width, config.NumAttentionHeads, config.QkvBias);
        layer_scale1 = new Dinov2LayerScale(width, config.LayerScaleValue);
        norm2 = nn.LayerNorm(width, config.LayerNormEps);
        mlp = new Dinov2Mlp(width, config.IntermediateSize, Activations.Resolve(config.HiddenAct, "Dinov2 config"));
        layer_scale2 = new Dinov2LayerScale(width, config.LayerScaleValue);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var afterAttention = hidden + layer_scale1.forward(attention.forward(norm1.forward(hidden)));
        var result = afterAttention + layer_scale2.forward(mlp.forward(norm2.forward(afterAttention)));
        return result.MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>Dinov2WithRegistersEmbeddings</c>: patches, CLS, position table, then registers after CLS.</summary>
public sealed class Dinov2Embeddings : nn.Module<Tensor, Tensor>
{
    private readonly Parameter cls_token;
    private readonly Parameter mask_token;
    private readonly Parameter register_tokens;
    private readonly Parameter position_embeddings;
    private readonly HfPatchEmbeddings patch_embeddings;
    private readonly int _patchSize;

    public Dinov2Embeddings(Dinov2Config config) : base(nameof(Dinov2Embeddings))
    {
        var width = config.HiddenSize;
        cls_token = new Parameter(zeros(1, 1, width));
        mask_token = new Parameter(zeros(1, width));
        register_tokens = new Parameter(zeros(1, config.NumRegisterTokens, width));
        position_embeddings = new Parameter(zeros(1, config.PretrainGrid * config.PretrainGrid + 1, width));
        patch_embeddings = new HfPatchEmbeddings(config.NumChannels, width, config.PatchSize);
        _patchSize = config.PatchSize;
        RegisterComponents();
    }

    /// <summary>[B,3,H,W] → [B, 1 + registers + patches, D] in the order [CLS, R1..Rk, patches].</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var batch = pixels.shape[0];
        var patches = patch_embeddings.forward(pixels);
        var tokens = cat([cls_token.expand(batch, -1, -1), patches], 1) + PositionTable(pixels.shape[2], pixels.shape[3], patches.shape[1]);
        var registers = register_tokens.expand(batch, -1, -1);
        return cat([tokens[.., ..1], registers, tokens[.., 1..]], 1).MoveToOuterDisposeScope();
    }

    /// <summary>The pretrain table as is when the grid matches (and the image is square), else resized bicubic with antialias.</summary>
    private Tensor PositionTable(long height, long width, long patchCount) =>
        HfEncoderSupport.PositionTableFor(position_embeddings, height, width, patchCount, _patchSize, antialias: true);
}

/// <summary>
/// RAE's <c>Dinov2withNorm</c> on a transformers <c>Dinov2WithRegistersModel</c> checkpoint: final LayerNorm without
/// affine, CLS and register tokens dropped → [B, (H/p)(W/p), D].
/// <para>Keys (an optional common prefix is detected): <c>embeddings.cls_token</c>, <c>embeddings.mask_token</c>,
/// <c>embeddings.register_tokens</c>, <c>embeddings.position_embeddings</c>,
/// <c>embeddings.patch_embeddings.projection.{weight,bias}</c>; per layer i <c>encoder.layer.{i}.</c> +
/// <c>norm1.{weight,bias}</c>, <c>attention.attention.{query,key,value}.{weight,bias}</c>,
/// <c>attention.output.dense.{weight,bias}</c>, <c>layer_scale1.lambda1</c>, <c>norm2.{weight,bias}</c>,
/// <c>mlp.fc1.{weight,bias}</c>, <c>mlp.fc2.{weight,bias}</c>, <c>layer_scale2.lambda1</c>. <c>layernorm.{weight,bias}</c>
/// (the final norm's affine, removed by RAE) is accepted and ignored.</para>
/// </summary>
public sealed class Dinov2WithRegistersEncoder : HfVisionEncoder<Dinov2Config>
{
    private static readonly HfEncoderCheckpoint Checkpoint = new("embeddings.patch_embeddings.projection.weight",
        HfEncoderSupport.ImageNetMean, HfEncoderSupport.ImageNetStd,
        IsIgnorable: key => key is "layernorm.weight" or "layernorm.bias");

    private readonly Dinov2Embeddings embeddings;
    private readonly HfLayerStack<Dinov2Layer> encoder;
    private readonly LayerNorm layernorm;

    public Dinov2WithRegistersEncoder(Dinov2Config config, IReadOnlyList<float>? imageMean = null, IReadOnlyList<float>? imageStd = null)
        : base(nameof(Dinov2WithRegistersEncoder), config, Checkpoint, imageMean, imageStd)
    {
        embeddings = new Dinov2Embeddings(config);
        encoder = new HfLayerStack<Dinov2Layer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new Dinov2Layer(config)));
        layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, elementwise_affine: false);
        RegisterFrozen();
    }

    /// <summary>Builds from <c>config.json</c> and loads <c>model.safetensors</c> strictly from a Hugging Face model folder.</summary>
    public static Dinov2WithRegistersEncoder FromPretrained(string folder, Device? device = null) =>
        LoadPretrained(folder, device, Checkpoint, Dinov2Config.FromJson, (config, mean, std) => new Dinov2WithRegistersEncoder(config, mean, std));

    protected override Tensor Tokens(Tensor images)
    {
        var hidden = layernorm.forward(encoder.forward(embeddings.forward(images)));
        return hidden[.., (1 + Config.NumRegisterTokens)..].contiguous();
    }
}
