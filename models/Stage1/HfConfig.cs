using System.Text.Json;

namespace RAE.Models.Stage1;

/// <summary>
/// Reads a Hugging Face <c>config.json</c>. Saved configs omit values equal to the class defaults, so every getter
/// takes the default of the corresponding transformers config class.
/// </summary>
public sealed class HfConfig
{
    private readonly JsonElement _root;

    private HfConfig(JsonElement root, string source)
    {
        _root = root;
        Source = source;
    }

    /// <summary>Where the values came from (a file path), for error messages.</summary>
    public string Source { get; }

    public static HfConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Hugging Face config not found: {path}", path);
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        return new HfConfig(document.RootElement.Clone(), path);
    }

    public static HfConfig Parse(string json, string source = "<inline json>")
    {
        using var document = JsonDocument.Parse(json);
        return new HfConfig(document.RootElement.Clone(), source);
    }

    /// <summary>The nested object (e.g. SigLIP's <c>vision_config</c>), or this config when the key is absent.</summary>
    public HfConfig SectionOrSelf(string name) =>
        _root.TryGetProperty(name, out var section) && section.ValueKind == JsonValueKind.Object
            ? new HfConfig(section, $"{Source}#{name}")
            : this;

    public bool Has(string name) => _root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null;

    public int GetInt(string name, int fallback)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var result)) return result;
        // image_size / patch_size may be stored as a pair; RAE only supports square inputs.
        if (value.ValueKind == JsonValueKind.Array)
        {
            var items = value.EnumerateArray().Select(e => e.GetInt32()).Distinct().ToArray();
            if (items.Length == 1) return items[0];
        }
        throw new InvalidDataException($"{Source}: '{name}' must be an integer (or a square pair), found {value.GetRawText()}");
    }

    public double GetDouble(string name, double fallback)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind == JsonValueKind.Number
            ? value.GetDouble()
            : throw new InvalidDataException($"{Source}: '{name}' must be a number, found {value.GetRawText()}");
    }

    public bool GetBool(string name, bool fallback)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidDataException($"{Source}: '{name}' must be true or false, found {value.GetRawText()}"),
        };
    }

    public string GetString(string name, string fallback)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new InvalidDataException($"{Source}: '{name}' must be a string, found {value.GetRawText()}");
    }

    /// <summary>A float list such as <c>image_mean</c>, or null when absent.</summary>
    public float[]? GetFloatArray(string name)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{Source}: '{name}' must be a list of numbers, found {value.GetRawText()}");
        return value.EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
    }
}
