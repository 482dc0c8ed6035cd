using System.Text.Json;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// A DINO ViT backbone recipe (<c>disc.dinodisc.recipes</c>): depth, the blocks whose tokens feed heads, LayerNorm eps,
/// patch size, width and heads. The input is always resized to <see cref="InputSize"/> first.
/// </summary>
public sealed record DinoBackboneRecipe(
    string Name,
    int Depth,
    IReadOnlyList<int> KeyDepths,
    double NormEps,
    int PatchSize,
    int InChannels,
    int EmbedDim,
    int NumHeads,
    double MlpRatio)
{
    public const int InputSize = 224;

    /// <summary>ViT-S/8, the released discriminator backbone (dino_vit_small_patch8_224.pth).</summary>
    public static DinoBackboneRecipe S8 { get; } = new("S_8", 12, [2, 5, 8, 11], 1e-6, 8, 3, 384, 6, 4.0);

    public static DinoBackboneRecipe S16 { get; } = new("S_16", 12, [2, 5, 8, 11], 1e-6, 16, 3, 384, 6, 4.0);

    public static DinoBackboneRecipe B16 { get; } = new("B_16", 12, [2, 5, 8, 11], 1e-6, 16, 3, 768, 12, 4.0);

    public int GridSide => InputSize / PatchSize;

    public int TokenCount => GridSide * GridSide;

    /// <summary>round(embed·mlp_ratio), the MLP hidden width.</summary>
    public int MlpHidden => (int)Math.Round(EmbedDim * MlpRatio, MidpointRounding.ToEven);

    /// <summary>One head per key depth plus one for the last block.</summary>
    public int HeadCount => KeyDepths.Count + 1;

    public static DinoBackboneRecipe Named(string name) => name switch
    {
        "S_8" => S8,
        "S_16" => S16,
        "B_16" => B16,
        _ => throw new ArgumentException($"discriminator recipe '{name}' is unknown (S_8, S_16, B_16)"),
    };

    /// <summary>Reads a recipe object with the reference field names (name, depth, key_depths, norm_eps, patch_size, ...).</summary>
    public static DinoBackboneRecipe FromJson(JsonElement json, string source)
    {
        int Int(string key) => json.TryGetProperty(key, out var value) ? value.GetInt32()
            : throw new InvalidDataException($"{source}: recipe has no '{key}'");
        double Double(string key) => json.TryGetProperty(key, out var value) ? value.GetDouble()
            : throw new InvalidDataException($"{source}: recipe has no '{key}'");
        var keyDepths = json.TryGetProperty("key_depths", out var depths)
            ? depths.EnumerateArray().Select(d => d.GetInt32()).ToArray()
            : throw new InvalidDataException($"{source}: recipe has no 'key_depths'");
        var name = json.TryGetProperty("name", out var nameJson) ? nameJson.GetString() ?? "custom" : "custom";
        return new DinoBackboneRecipe(name, Int("depth"), keyDepths, Double("norm_eps"), Int("patch_size"), Int("in_chans"),
            Int("embed_dim"), Int("num_heads"), Double("mlp_ratio")).Validated(source);
    }

    public DinoBackboneRecipe Validated(string source)
    {
        if (Depth <= 0) throw new ArgumentException($"{source}: recipe depth must be positive, got {Depth}");
        if (PatchSize <= 0 || InputSize % PatchSize != 0)
            throw new ArgumentException($"{source}: patch size {PatchSize} does not divide the input size {InputSize}");
        if (NumHeads <= 0 || EmbedDim % NumHeads != 0)
            throw new ArgumentException($"{source}: embed dim {EmbedDim} is not divisible by {NumHeads} heads");
        if (KeyDepths.Count == 0 || KeyDepths.Any(d => d < 0 || d >= Depth))
            throw new ArgumentException($"{source}: key depths [{string.Join(", ", KeyDepths)}] must be block indices in [0, {Depth})");
        return this;
    }
}
