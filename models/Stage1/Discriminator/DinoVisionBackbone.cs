using RAE.Models.IO;
using RAE.Models.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// The frozen DINO ViT of the discriminator (<c>FrozenDINONoDrop</c>) with the original DINO checkpoint keys:
/// <c>cls_token</c>, <c>pos_embed</c>, <c>patch_embed.proj.*</c>, <c>blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*</c>,
/// <c>norm.*</c> (loaded, never applied), plus the buffers <c>x_scale</c>/<c>x_shift</c> that map [-1,1] images to
/// ImageNet normalisation. Gradients flow through it to the input (the generator step needs them); its parameters
/// never require grad.
/// </summary>
public sealed class DinoVisionBackbone : nn.Module<Tensor, Tensor>
{
    private static readonly double[] ImageNetMean = [0.485, 0.456, 0.406];
    private static readonly double[] ImageNetStd = [0.229, 0.224, 0.225];

    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly PatchEmbed patch_embed;
    private readonly ModuleList<DinoBlock> blocks;
    private readonly LayerNorm norm;
    private readonly Tensor x_scale;
    private readonly Tensor x_shift;

    public DinoVisionBackbone(DinoBackboneRecipe recipe) : base(nameof(DinoVisionBackbone))
    {
        Recipe = recipe.Validated("DINO backbone");
        cls_token = new Parameter(zeros(1, 1, recipe.EmbedDim));
        pos_embed = new Parameter(zeros(1, recipe.TokenCount + 1, recipe.EmbedDim));
        patch_embed = new PatchEmbed(DinoBackboneRecipe.InputSize, recipe.PatchSize, recipe.InChannels, recipe.EmbedDim);
        blocks = new ModuleList<DinoBlock>(Enumerable.Range(0, recipe.Depth).Select(_ => new DinoBlock(recipe)).ToArray());
        norm = nn.LayerNorm(recipe.EmbedDim, recipe.NormEps);
        // x·(0.5/std) + (0.5 − mean)/std, computed in double and stored as float32 like the reference buffers.
        x_scale = tensor(ImageNetStd.Select(s => (float)(0.5 / s)).ToArray()).view(1, 3, 1, 1);
        x_shift = tensor(ImageNetMean.Zip(ImageNetStd, (m, s) => (float)((0.5 - m) / s)).ToArray()).view(1, 3, 1, 1);
        RegisterComponents();
        foreach (var parameter in parameters()) parameter.requires_grad = false;
        eval();
    }

    public DinoBackboneRecipe Recipe { get; }

    /// <summary>
    /// Builds the backbone and loads a DINO checkpoint (.pth or .safetensors) with the reference loader's rules: every
    /// <c>attn.qkv.bias</c> has its key third zeroed first; a missing key other than x_scale/x_shift, an unexpected key
    /// (e.g. a classifier head) or a mis-shaped one is an error naming the file.
    /// </summary>
    public static DinoVisionBackbone Load(DinoBackboneRecipe recipe, string checkpointPath)
    {
        var stateDict = CheckpointLoader.LoadStateDict(checkpointPath);
        try
        {
            return FromStateDict(recipe, stateDict, checkpointPath);
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
    }

    public static DinoVisionBackbone FromStateDict(DinoBackboneRecipe recipe, IReadOnlyDictionary<string, Tensor> stateDict, string source)
    {
        var backbone = new DinoVisionBackbone(recipe);
        try
        {
            using var scope = NewDisposeScope();
            var withZeroKeyBias = new Dictionary<string, Tensor>(stateDict, StringComparer.Ordinal);
            foreach (var (key, value) in stateDict)
            {
                if (!key.EndsWith(".attn.qkv.bias", StringComparison.Ordinal)) continue;
                if (value.dim() != 1 || value.shape[0] % 3 != 0)
                    throw new InvalidDataException($"{source}: '{key}' has shape [{string.Join(",", value.shape)}], not [3·C]");
                var width = value.shape[0] / 3;
                var zeroed = value.detach().clone();
                zeroed.narrow(0, width, width).zero_();
                withZeroKeyBias[key] = zeroed;
            }
            StateDictLoading.LoadStrict(backbone, withZeroKeyBias, source, keyPrefix: "", isIgnorable: null,
                isOptional: key => key is nameof(x_scale) or nameof(x_shift));
            return backbone;
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
    }

    /// <summary>The image entering patch_embed: bilinear resize to 224 (align_corners false, no antialias), then x·x_scale + x_shift.</summary>
    public Tensor PrepareInput(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != Recipe.InChannels)
            throw new ArgumentException($"DINO backbone expects [B, {Recipe.InChannels}, H, W] images, got [{string.Join(", ", images.shape)}]");
        using var resized = F.interpolate(images, [DinoBackboneRecipe.InputSize, DinoBackboneRecipe.InputSize],
            mode: InterpolationMode.Bilinear, align_corners: false);
        using var scaled = resized * x_scale;
        return scaled + x_shift;
    }

    /// <summary>
    /// The feature maps the heads read, each [B, C, tokens] without CLS: the last block's output, then the outputs of the
    /// key-depth blocks in order (so with key depth 11 the last block appears twice). The final norm is not applied.
    /// </summary>
    public IReadOnlyList<Tensor> Features(Tensor images)
    {
        using var scope = NewDisposeScope();
        var prepared = PrepareInput(images);
        var features = FeaturesOfPrepared(prepared);
        foreach (var feature in features) feature.MoveToOuterDisposeScope();
        return features;
    }

    public IReadOnlyList<Tensor> FeaturesOfPrepared(Tensor prepared)
    {
        using var scope = NewDisposeScope();
        var batch = prepared.shape[0];
        var tokens = patch_embed.forward(prepared);
        var hidden = cat([cls_token.expand(batch, -1, -1), tokens], 1) + pos_embed;
        var features = new List<Tensor>();
        for (var i = 0; i < blocks.Count; i++)
        {
            hidden = blocks[i].forward(hidden);
            if (Recipe.KeyDepths.Contains(i)) features.Add(DropClsToken(hidden));
        }
        features.Insert(0, DropClsToken(hidden));
        foreach (var feature in features) feature.MoveToOuterDisposeScope();
        return features;
    }

    /// <summary>The last block's features [B, C, tokens] (the module form of <see cref="Features"/>'s first map).</summary>
    public override Tensor forward(Tensor images)
    {
        var features = Features(images);
        for (var i = 1; i < features.Count; i++) features[i].Dispose();
        return features[0];
    }

    private static Tensor DropClsToken(Tensor hidden) => hidden[.., 1.., ..].transpose(1, 2);
}

/// <summary>DINO's pre-norm block: x += proj(attn(norm1(x))); x += fc2(gelu_tanh(fc1(norm2(x)))).</summary>
public sealed class DinoBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly DinoAttention attn;
    private readonly LayerNorm norm2;
    private readonly DinoMlp mlp;

    public DinoBlock(DinoBackboneRecipe recipe) : base(nameof(DinoBlock))
    {
        norm1 = nn.LayerNorm(recipe.EmbedDim, recipe.NormEps);
        attn = new DinoAttention(recipe.EmbedDim, recipe.NumHeads);
        norm2 = nn.LayerNorm(recipe.EmbedDim, recipe.NormEps);
        mlp = new DinoMlp(recipe.EmbedDim, recipe.MlpHidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var afterAttention = hidden + attn.forward(norm1.forward(hidden));
        return (afterAttention + mlp.forward(norm2.forward(afterAttention))).MoveToOuterDisposeScope();
    }
}

/// <summary>DINO attention with a fused <c>qkv</c> Linear: softmax((q·head_dim^−½) kᵀ) v, then <c>proj</c>.</summary>
public sealed class DinoAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly int _heads;
    private readonly double _scale;

    public DinoAttention(int width, int heads) : base(nameof(DinoAttention))
    {
        qkv = nn.Linear(width, 3 * width, hasBias: true);
        proj = nn.Linear(width, width);
        _heads = heads;
        _scale = Math.Pow(width / heads, -0.5);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var (batch, tokens, width) = (hidden.shape[0], hidden.shape[1], hidden.shape[2]);
        var split = qkv.forward(hidden).reshape(batch, tokens, 3, _heads, width / _heads).permute(2, 0, 3, 1, 4);
        var (query, key, value) = (split[0], split[1], split[2]);
        var attention = (query * _scale).matmul(key.transpose(-2, -1)).softmax(-1);
        var attended = attention.matmul(value).transpose(1, 2).reshape(batch, tokens, width);
        return proj.forward(attended).MoveToOuterDisposeScope();
    }
}

/// <summary>timm/DINO <c>Mlp</c>: fc2(gelu_tanh(fc1(x))).</summary>
public sealed class DinoMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public DinoMlp(int width, int hidden) : base(nameof(DinoMlp))
    {
        fc1 = nn.Linear(width, hidden);
        fc2 = nn.Linear(hidden, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var hidden = fc1.forward(input);
        using var activated = F.gelu(hidden, GELU.Approximate.tanh);
        return fc2.forward(activated);
    }
}
