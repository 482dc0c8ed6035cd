using System.Text.Json;

namespace RAE.Models.Verification;

/// <summary>A folder exported from the reference PyTorch code: case.json, weights.safetensors, io.safetensors, ...</summary>
public sealed class ReferenceCase
{
    private ReferenceCase(string directory, JsonElement root)
    {
        Directory = directory;
        Root = root;
    }

    public string Directory { get; }

    /// <summary>The parsed case.json (a clone, valid after the document is gone).</summary>
    public JsonElement Root { get; }

    public string Name => System.IO.Path.GetFileName(Directory.TrimEnd('/', '\\'));

    /// <summary>The reference class named by case.json's "model" (for example "stage2.models.DDT.DiTwDDTHead"), or "".</summary>
    public string Model => Root.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String ? model.GetString()! : "";

    public string PathOf(string file) => System.IO.Path.Combine(Directory, file);

    public bool Has(string file) => File.Exists(PathOf(file));

    public static ReferenceCase Open(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"reference case folder not found: {directory}");
        var casePath = System.IO.Path.Combine(directory, "case.json");
        if (!File.Exists(casePath)) throw new FileNotFoundException($"reference case folder {directory} has no case.json", casePath);
        using var document = JsonDocument.Parse(File.ReadAllText(casePath));
        return new ReferenceCase(directory, document.RootElement.Clone());
    }
}
