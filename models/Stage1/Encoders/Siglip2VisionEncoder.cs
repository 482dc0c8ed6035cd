using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>
/// Hyper-parameters of a transformers <c>SiglipVisionConfig</c> (the <c>vision_config</c> section of a SigLIP/SigLIP2
/// fixed-resolution config.json, or a vision-only config; missing keys take its defaults).
/// </summary>
public sealed record SiglipVisionConfig(
    int HiddenSize = 768,
    int NumHiddenLayers = 12,
    int NumAttentionHeads = 12,
    int IntermediateSize = 3072,
    int PatchSize = 16,
    int ImageSize = 224,
    int NumChannels = 3,
    double LayerNormEps = 1e-6,
    string HiddenAct = "gelu_pytorch_tanh") : IHfVisionConfig
{
    public int PretrainGrid => ImageSize / PatchSize;

    public static SiglipVisionConfig FromJson(HfConfig root)
    {
        var config = root.SectionOrSelf("vision_config");
        return new SiglipVisionConfig(
            HiddenSize: config.GetInt("hidden_size", 768),
            NumHiddenLayers: config.GetInt("num_hidden_layers", 12),
            NumAttentionHeads: config.GetInt("num_attention_heads", 12),
            IntermediateSize: config.GetInt("intermediate_size", 3072),
            PatchSize: config.GetInt("patch_size", 16),
            ImageSize: config.GetInt("image_size", 224),
            NumChannels: config.GetInt("num_channels", 3),
            LayerNormEps: config.GetDouble("layer_norm_eps", 1e-6),
            HiddenAct: config.GetString("hidden_act", "gelu_pytorch_tanh"));
    }
}

/// <summary>transformers <c>SiglipAttention</c>: q_proj, k_proj, v_proj, out_proj (all with bias).</summary>
public sealed class SiglipAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear out_proj;
    private readonly int _heads;

    public SiglipAttention(int width, int heads) : base(nameof(SiglipAttention))
    {
        if (width % heads != 0) throw new ArgumentException($"SigLIP attention width {width} is not divisible by {heads} heads");
        q_proj = nn.Linear(width, width);
        k_proj = nn.Linear(width, width);
        v_proj = nn.Linear(width, width);
        out_proj = nn.Linear(width, width);
        _heads = heads;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var q = q_proj.forward(hidden);
        using var k = k_proj.forward(hidden);
        using var v = v_proj.forward(hidden);
        using var attended = MultiHeadAttention.Compute(q, k, v, _heads);
        return out_proj.forward(attended);
    }
}

/// <summary>transformers <c>SiglipEncoderLayer</c>: h += Attn(layer_norm1(h)); h += fc2(act(fc1(layer_norm2(h)))).</summary>
public sealed class SiglipEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly SiglipAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly Dinov2Mlp mlp;
    private readonly LayerNorm layer_norm2;

    public SiglipEncoderLayer(SiglipVisionConfig config) : base(nameof(SiglipEncoderLayer))
    {
        self_attn = new SiglipAttention(config.HiddenSize, config.NumAttentionHeads);
        layer_norm1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        mlp = new Dinov2Mlp(config.HiddenSize, config.IntermediateSize, Activations.Resolve(config.HiddenAct, "SigLIP vision config"));
        layer_norm2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var afterAttention = hidden + self_attn.forward(layer_norm1.forward(hidden));
        return (afterAttention + mlp.forward(layer_norm2.forward(afterAttention))).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>SiglipEncoder</c>: the layer stack under the field name <c>layers</c>.</summary>
public sealed class SiglipEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<SiglipEncoderLayer> layers;

    public SiglipEncoder(SiglipVisionConfig config) : base(nameof(SiglipEncoder))
    {
        layers = new ModuleList<SiglipEncoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new SiglipEncoderLayer(config)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        foreach (var layer in layers) hidden = layer.forward(hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>SiglipVisionEmbeddings</c>: patch_embedding (Conv2d) + position_embedding (Embedding), no CLS.</summary>
public sealed class SiglipVisionEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;
    private readonly int _patchSize;

    public SiglipVisionEmbeddings(SiglipVisionConfig config) : base(nameof(SiglipVisionEmbeddings))
    {
        patch_embedding = nn.Conv2d(config.NumChannels, config.HiddenSize, config.PatchSize, stride: config.PatchSize);
        position_embedding = nn.Embedding(config.PretrainGrid * config.PretrainGrid, config.HiddenSize);
        _patchSize = config.PatchSize;
        RegisterComponents();
    }

    /// <summary>interpolate_pos_encoding=True: the table as is when the grid matches, else bicubic (no antialias).</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var patches = patch_embedding.forward(pixels).flatten(2).transpose(1, 2);
        var table = position_embedding.weight!.unsqueeze(0);
        if (patches.shape[1] != table.shape[1] || pixels.shape[2] != pixels.shape[3])
            table = HfEncoderSupport.ResizePatchTable(table, pixels.shape[2] / _patchSize, pixels.shape[3] / _patchSize, antialias: false);
        return (patches + table).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// RAE's <c>SigLIP2wNorm</c>: the vision tower of a transformers <c>SiglipModel</c> (e.g. google/siglip2-base-patch16-256),
/// post_layernorm without affine, every token kept → [B,(H/p)(W/p),D]. The attention-pooling head is not used.
/// <para>Keys relative to the tower (the prefix, normally <c>vision_model.</c>, is detected; keys outside it such as
/// <c>text_model.*</c>, <c>logit_scale</c> are not read): <c>embeddings.patch_embedding.{weight,bias}</c>,
/// <c>embeddings.position_embedding.weight</c>; per layer <c>encoder.layers.{i}.</c> +
/// <c>self_attn.{q_proj,k_proj,v_proj,out_proj}.{weight,bias}</c>, <c>layer_norm1.{weight,bias}</c>,
/// <c>mlp.fc1.{weight,bias}</c>, <c>mlp.fc2.{weight,bias}</c>, <c>layer_norm2.{weight,bias}</c>. Accepted and ignored:
/// <c>post_layernorm.{weight,bias}</c> (affine removed by RAE) and <c>head.*</c> (pooling head).</para>
/// </summary>
public sealed class Siglip2VisionEncoder : HfVisionEncoder<SiglipVisionConfig>
{
    private static readonly HfEncoderCheckpoint Checkpoint = new("embeddings.patch_embedding.weight", [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f],
        IsIgnorable: key => key is "post_layernorm.weight" or "post_layernorm.bias" || key.StartsWith("head.", StringComparison.Ordinal));

    private readonly SiglipVisionEmbeddings embeddings;
    private readonly SiglipEncoder encoder;
    private readonly LayerNorm post_layernorm;

    public Siglip2VisionEncoder(SiglipVisionConfig config, IReadOnlyList<float>? imageMean = null, IReadOnlyList<float>? imageStd = null)
        : base(nameof(Siglip2VisionEncoder), config, Checkpoint, imageMean, imageStd)
    {
        embeddings = new SiglipVisionEmbeddings(config);
        encoder = new SiglipEncoder(config);
        post_layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, elementwise_affine: false);
        RegisterFrozen();
    }

    /// <summary>Builds from <c>config.json</c> and loads <c>model.safetensors</c> strictly from a Hugging Face model folder.</summary>
    public static Siglip2VisionEncoder FromPretrained(string folder, Device? device = null) =>
        LoadPretrained(folder, device, Checkpoint, SiglipVisionConfig.FromJson, (config, mean, std) => new Siglip2VisionEncoder(config, mean, std));

    protected override Tensor Tokens(Tensor images) => post_layernorm.forward(encoder.forward(embeddings.forward(images)));
}
