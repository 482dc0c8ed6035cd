using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1;

/// <summary>
/// Writes tiny Hugging Face model folders (config.json + model.safetensors) whose key names and shapes are spelled
/// out here from the transformers module layout, independently of the C# modules under test.
/// </summary>
internal static class HfTestCheckpoints
{
    public const int Width = 32;
    public const int Heads = 2;
    public const int Mlp = 64;

    public static string NewFolder()
    {
        var folder = Path.Combine(Path.GetTempPath(), "rae-stage1-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }

    public static Dictionary<string, long[]> Dinov2Keys(int layers, int patch, int grid, int registers)
    {
        var keys = new Dictionary<string, long[]>
        {
            ["embeddings.cls_token"] = [1, 1, Width],
            ["embeddings.mask_token"] = [1, Width],
            ["embeddings.register_tokens"] = [1, registers, Width],
            ["embeddings.position_embeddings"] = [1, grid * grid + 1, Width],
            ["embeddings.patch_embeddings.projection.weight"] = [Width, 3, patch, patch],
            ["embeddings.patch_embeddings.projection.bias"] = [Width],
            ["layernorm.weight"] = [Width],
            ["layernorm.bias"] = [Width],
        };
        for (var i = 0; i < layers; i++)
        {
            var p = $"encoder.layer.{i}.";
            AddNorm(keys, p + "norm1");
            AddLinear(keys, p + "attention.attention.query", Width, Width);
            AddLinear(keys, p + "attention.attention.key", Width, Width);
            AddLinear(keys, p + "attention.attention.value", Width, Width);
            AddLinear(keys, p + "attention.output.dense", Width, Width);
            keys[p + "layer_scale1.lambda1"] = [Width];
            AddNorm(keys, p + "norm2");
            AddLinear(keys, p + "mlp.fc1", Width, Mlp);
            AddLinear(keys, p + "mlp.fc2", Mlp, Width);
            keys[p + "layer_scale2.lambda1"] = [Width];
        }
        return keys;
    }

    /// <summary>A whole SiglipModel: vision tower under vision_model. (with its pooling head) plus text-side keys.</summary>
    public static Dictionary<string, long[]> SiglipKeys(int layers, int patch, int grid)
    {
        const string v = "vision_model.";
        var keys = new Dictionary<string, long[]>
        {
            [v + "embeddings.patch_embedding.weight"] = [Width, 3, patch, patch],
            [v + "embeddings.patch_embedding.bias"] = [Width],
            [v + "embeddings.position_embedding.weight"] = [grid * grid, Width],
            [v + "post_layernorm.weight"] = [Width],
            [v + "post_layernorm.bias"] = [Width],
            [v + "head.probe"] = [1, 1, Width],
            [v + "head.attention.in_proj_weight"] = [3 * Width, Width],
            [v + "head.attention.in_proj_bias"] = [3 * Width],
            [v + "head.layernorm.weight"] = [Width],
            ["text_model.embeddings.token_embedding.weight"] = [10, Width],
            ["logit_scale"] = [1],
            ["logit_bias"] = [1],
        };
        for (var i = 0; i < layers; i++)
        {
            var p = $"{v}encoder.layers.{i}.";
            foreach (var proj in new[] { "q_proj", "k_proj", "v_proj", "out_proj" }) AddLinear(keys, p + "self_attn." + proj, Width, Width);
            AddNorm(keys, p + "layer_norm1");
            AddLinear(keys, p + "mlp.fc1", Width, Mlp);
            AddLinear(keys, p + "mlp.fc2", Mlp, Width);
            AddNorm(keys, p + "layer_norm2");
        }
        return keys;
    }

    /// <summary>A ViTMAEForPreTraining: encoder under vit. plus a decoder key that must not be read.</summary>
    public static Dictionary<string, long[]> MaeKeys(int layers, int patch, int grid)
    {
        var keys = new Dictionary<string, long[]>
        {
            ["vit.embeddings.cls_token"] = [1, 1, Width],
            ["vit.embeddings.position_embeddings"] = [1, grid * grid + 1, Width],
            ["vit.embeddings.patch_embeddings.projection.weight"] = [Width, 3, patch, patch],
            ["vit.embeddings.patch_embeddings.projection.bias"] = [Width],
            ["vit.layernorm.weight"] = [Width],
            ["vit.layernorm.bias"] = [Width],
            ["decoder.decoder_embed.weight"] = [16, Width],
        };
        for (var i = 0; i < layers; i++)
        {
            var p = $"vit.encoder.layer.{i}.";
            AddLinear(keys, p + "attention.attention.query", Width, Width);
            AddLinear(keys, p + "attention.attention.key", Width, Width);
            AddLinear(keys, p + "attention.attention.value", Width, Width);
            AddLinear(keys, p + "attention.output.dense", Width, Width);
            AddLinear(keys, p + "intermediate.dense", Width, Mlp);
            AddLinear(keys, p + "output.dense", Mlp, Width);
            AddNorm(keys, p + "layernorm_before");
            AddNorm(keys, p + "layernorm_after");
        }
        return keys;
    }

    /// <summary>Random values for every key (seeded), written to model.safetensors; returns the tensors (caller disposes).</summary>
    public static Dictionary<string, Tensor> WriteWeights(string folder, Dictionary<string, long[]> keys, int seed)
    {
        using var generator = new Generator((ulong)seed);
        var tensors = keys.ToDictionary(pair => pair.Key, pair => randn(pair.Value, generator: generator) * 0.3f);
        SafeTensors.Save(Path.Combine(folder, "model.safetensors"), tensors);
        return tensors;
    }

    public static void WriteConfig(string folder, string json) => File.WriteAllText(Path.Combine(folder, "config.json"), json);

    public static void Dispose(Dictionary<string, Tensor> tensors)
    {
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    private static void AddLinear(Dictionary<string, long[]> keys, string name, int inputs, int outputs)
    {
        keys[name + ".weight"] = [outputs, inputs];
        keys[name + ".bias"] = [outputs];
    }

    private static void AddNorm(Dictionary<string, long[]> keys, string name)
    {
        keys[name + ".weight"] = [Width];
        keys[name + ".bias"] = [Width];
    }
}
