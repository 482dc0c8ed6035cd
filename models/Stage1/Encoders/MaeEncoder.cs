using RAE.Models.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>Hyper-parameters of a transformers <c>ViTMAEConfig</c> encoder (missing keys take its defaults).</summary>
public sealed record MaeConfig(
    int HiddenSize = 768,
    int NumHiddenLayers = 12,
    int NumAttentionHeads = 12,
    int IntermediateSize = 3072,
    int PatchSize = 16,
    int ImageSize = 224,
    int NumChannels = 3,
    double LayerNormEps = 1e-12,
    string HiddenAct = "gelu",
    bool QkvBias = true) : IHfVisionConfig
{
    public int PretrainGrid => ImageSize / PatchSize;

    public static MaeConfig FromJson(HfConfig config) => new(
        HiddenSize: config.GetInt("hidden_size", 768),
        NumHiddenLayers: config.GetInt("num_hidden_layers", 12),
        NumAttentionHeads: config.GetInt("num_attention_heads", 12),
        IntermediateSize: config.GetInt("intermediate_size", 3072),
        PatchSize: config.GetInt("patch_size", 16),
        ImageSize: config.GetInt("image_size", 224),
        NumChannels: config.GetInt("num_channels", 3),
        LayerNormEps: config.GetDouble("layer_norm_eps", 1e-12),
        HiddenAct: config.GetString("hidden_act", "gelu"),
        QkvBias: config.GetBool("qkv_bias", true));
}

/// <summary>transformers <c>ViTMAEEmbeddings</c> with mask_ratio 0: patches + position table, then CLS (+ its position).</summary>
public sealed class MaeEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Parameter cls_token;
    private readonly Parameter position_embeddings;
    private readonly HfPatchEmbeddings patch_embeddings;
    private readonly int _patchSize;

    public MaeEmbeddings(MaeConfig config) : base(nameof(MaeEmbeddings))
    {
        cls_token = new Parameter(zeros(1, 1, config.HiddenSize));
        using (var table = SinCosPositionEmbedding.Create2D(config.HiddenSize, config.PretrainGrid, withClsRow: true))
            position_embeddings = new Parameter(table.unsqueeze(0), requires_grad: false);
        patch_embeddings = new HfPatchEmbeddings(config.NumChannels, config.HiddenSize, config.PatchSize);
        _patchSize = config.PatchSize;
        RegisterComponents();
    }

    /// <summary>
    /// [B,3,H,W] → [B,1+N,D]. RAE passes noise = arange(N), so MAE's random masking with mask_ratio 0 keeps every
    /// patch in its original order: the masking step is the identity and is omitted.
    /// </summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var patches = patch_embeddings.forward(pixels);
        var table = PositionTable(pixels.shape[2], pixels.shape[3], patches.shape[1]);
        var tokens = patches + table[.., 1..];
        var cls = (cls_token + table[.., ..1]).expand(pixels.shape[0], -1, -1);
        return cat([cls, tokens], 1).MoveToOuterDisposeScope();
    }

    /// <summary>interpolate_pos_encoding=True: the table as is when the grid matches, else bicubic (no antialias).</summary>
    private Tensor PositionTable(long height, long width, long patchCount) =>
        HfEncoderSupport.PositionTableFor(position_embeddings, height, width, patchCount, _patchSize, antialias: false);
}

/// <summary>
/// RAE's <c>MAEwNorm</c> on the <c>.vit</c> part of a transformers <c>ViTMAEForPreTraining</c> (or a <c>ViTMAEModel</c>)
/// checkpoint: mask_ratio 0 with identity order, final LayerNorm without affine, CLS dropped → [B,(H/p)(W/p),D].
/// <para>Keys (optional common prefix such as <c>vit.</c>; keys outside it, e.g. the MAE <c>decoder.*</c>, are not
/// read): <c>embeddings.cls_token</c>, <c>embeddings.position_embeddings</c> (optional: the fixed sin-cos table is
/// rebuilt when absent), <c>embeddings.patch_embeddings.projection.{weight,bias}</c>; per layer
/// <c>encoder.layer.{i}.</c> + <c>attention.attention.{query,key,value}.{weight,bias}</c>,
/// <c>attention.output.dense.{weight,bias}</c>, <c>intermediate.dense.{weight,bias}</c>,
/// <c>output.dense.{weight,bias}</c>, <c>layernorm_before.{weight,bias}</c>, <c>layernorm_after.{weight,bias}</c>.
/// <c>layernorm.{weight,bias}</c> (final norm affine, removed by RAE) is accepted and ignored.</para>
/// </summary>
public sealed class MaeEncoder : HfVisionEncoder<MaeConfig>
{
    private static readonly HfEncoderCheckpoint Checkpoint = new("embeddings.patch_embeddings.projection.weight",
        HfEncoderSupport.ImageNetMean, HfEncoderSupport.ImageNetStd,
        IsIgnorable: key => key is "layernorm.weight" or "layernorm.bias",
        IsOptional: key => key == "embeddings.position_embeddings");

    private readonly MaeEmbeddings embeddings;
    private readonly HfLayerStack<ViTMaeLayer> encoder;
    private readonly LayerNorm layernorm;

    public MaeEncoder(MaeConfig config, IReadOnlyList<float>? imageMean = null, IReadOnlyList<float>? imageStd = null)
        : base(nameof(MaeEncoder), config, Checkpoint, imageMean, imageStd)
    {
        var activation = Activations.Resolve(config.HiddenAct, "ViTMAE config");
        embeddings = new MaeEmbeddings(config);
        encoder = new HfLayerStack<ViTMaeLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ =>
            new ViTMaeLayer(config.HiddenSize, config.NumAttentionHeads, config.IntermediateSize, config.LayerNormEps, config.QkvBias, activation)));
        layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, elementwise_affine: false);
        RegisterFrozen();
    }

    /// <summary>Builds from <c>config.json</c> and loads <c>model.safetensors</c> strictly from a Hugging Face model folder.</summary>
    public static MaeEncoder FromPretrained(string folder, Device? device = null) =>
        LoadPretrained(folder, device, Checkpoint, MaeConfig.FromJson, (config, mean, std) => new MaeEncoder(config, mean, std));

    protected override Tensor Tokens(Tensor images)
    {
        var hidden = layernorm.forward(encoder.forward(embeddings.forward(images)));
        return hidden[.., 1..].contiguous();
    }
}
