using YamlDotNet.RepresentationModel;

namespace RAE.Configuration;

/// <summary>
/// Typed, tracked access to one YAML mapping of a configuration. Every read marks the key as known; <see cref="RejectUnknownKeys"/>
/// then reports the first key nobody asked for. Errors name the full dotted key, the source and the line.
/// </summary>
internal sealed class ConfigSection
{
    private readonly YamlMappingNode _node;
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (YamlScalarNode Key, YamlNode Value)> _entries = new(StringComparer.Ordinal);

    public ConfigSection(YamlMappingNode node, string path, ConfigOrigin origin)
    {
        _node = node;
        Path = path;
        Origin = origin;
        foreach (var (key, value) in node.Children)
        {
            if (key is not YamlScalarNode scalarKey || string.IsNullOrEmpty(scalarKey.Value))
                throw origin.Error(key, path.Length == 0 ? null : path, "every key must be a non-empty plain name");
            _entries[scalarKey.Value] = (scalarKey, value);
        }
    }

    public string Path { get; }

    public ConfigOrigin Origin { get; }

    public YamlMappingNode Node => _node;

    public string KeyPath(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

    public ConfigException Error(string key, string problem) =>
        Origin.Error(_entries.TryGetValue(key, out var entry) ? entry.Key : _node, KeyPath(key), problem);

    public ConfigException SectionError(string problem) => Origin.Error(_node, Path.Length == 0 ? null : Path, problem);

    /// <summary>True when the key is present with a non-null value (marks it known).</summary>
    public bool Has(string key)
    {
        _known.Add(key);
        return _entries.TryGetValue(key, out var entry) && !ConfigScalars.IsNull(entry.Value);
    }

    /// <summary>True when the key is written at all, even with a null value (marks it known).</summary>
    public bool Present(string key)
    {
        _known.Add(key);
        return _entries.ContainsKey(key);
    }

    /// <summary>Marks keys that are accepted but deliberately ignored.</summary>
    public void Accept(params string[] keys)
    {
        foreach (var key in keys) _known.Add(key);
    }

    /// <summary>The value under <paramref name="key"/> or one of its alternative spellings; null when absent or YAML null.</summary>
    public (string Key, YamlNode Value)? Find(string key, params string[] aliases)
    {
        (string, YamlNode)? found = null;
        foreach (var name in aliases.Prepend(key))
        {
            _known.Add(name);
            if (!_entries.TryGetValue(name, out var entry)) continue;
            if (found is { } first)
                throw Error(name, $"conflicts with '{KeyPath(first.Item1)}': give only one spelling");
            found = (name, entry.Value);
        }
        return found is { } hit && !ConfigScalars.IsNull(hit.Item2) ? found : null;
    }

    public string? OptionalString(string key, params string[] aliases) =>
        Find(key, aliases) is { } hit ? ScalarText(hit.Key, hit.Value) : null;

    public string String(string key, string fallback, params string[] aliases) => OptionalString(key, aliases) ?? fallback;

    public string Choice(string key, string fallback, IReadOnlyCollection<string> allowed, bool ignoreCase = false)
    {
        var value = String(key, fallback);
        var match = allowed.FirstOrDefault(option => string.Equals(option, value, ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal));
        return match ?? throw Error(key, $"'{value}' is not one of: {string.Join(", ", allowed)}");
    }

    public double? OptionalDouble(string key, params string[] aliases)
    {
        if (Find(key, aliases) is not { } hit) return null;
        var text = ScalarText(hit.Key, hit.Value);
        return ConfigScalars.TryDouble(text, out var value) ? value : throw Error(hit.Key, $"expected a number, got '{text}'");
    }

    public double Double(string key, double fallback, params string[] aliases) => OptionalDouble(key, aliases) ?? fallback;

    public long? OptionalLong(string key, params string[] aliases)
    {
        if (Find(key, aliases) is not { } hit) return null;
        return ParseLong(hit.Key, ScalarText(hit.Key, hit.Value));
    }

    public int? OptionalInt(string key, params string[] aliases)
    {
        if (OptionalLong(key, aliases) is not { } value) return null;
        return value is >= int.MinValue and <= int.MaxValue ? (int)value : throw Error(key, $"{value} does not fit a 32-bit integer");
    }

    public int Int(string key, int fallback, params string[] aliases) => OptionalInt(key, aliases) ?? fallback;

    public long Long(string key, long fallback, params string[] aliases) => OptionalLong(key, aliases) ?? fallback;

    public bool? OptionalBool(string key, params string[] aliases)
    {
        if (Find(key, aliases) is not { } hit) return null;
        var text = ScalarText(hit.Key, hit.Value);
        return ConfigScalars.TryBool(text, out var value) ? value : throw Error(hit.Key, $"expected true or false, got '{text}'");
    }

    public bool Bool(string key, bool fallback, params string[] aliases) => OptionalBool(key, aliases) ?? fallback;

    /// <summary>A list of integers; a single integer is accepted as a one-element list.</summary>
    public IReadOnlyList<long>? OptionalLongList(string key, params string[] aliases)
    {
        if (Find(key, aliases) is not { } hit) return null;
        return Items(hit.Key, hit.Value).Select(item => ParseLong(hit.Key, item)).ToArray();
    }

    public IReadOnlyList<double>? OptionalDoubleList(string key, params string[] aliases)
    {
        if (Find(key, aliases) is not { } hit) return null;
        return Items(hit.Key, hit.Value)
            .Select(item => ConfigScalars.TryDouble(item, out var value) ? value : throw Error(hit.Key, $"expected a list of numbers, got item '{item}'"))
            .ToArray();
    }

    public IReadOnlyList<string>? OptionalStringList(string key, params string[] aliases) =>
        Find(key, aliases) is { } hit ? Items(hit.Key, hit.Value) : null;

    public ConfigSection? OptionalSection(string key)
    {
        if (Find(key) is not { } hit) return null;
        return hit.Value is YamlMappingNode mapping
            ? new ConfigSection(mapping, KeyPath(key), Origin)
            : throw Error(key, $"expected a mapping of keys, got {Describe(hit.Value)}");
    }

    public ConfigSection Section(string key) =>
        OptionalSection(key) ?? new ConfigSection(new YamlMappingNode(), KeyPath(key), Origin);

    /// <summary>The subtree under <paramref name="key"/> as plain .NET values (dictionaries, lists, scalars).</summary>
    public IReadOnlyDictionary<string, object?> Raw(string key) =>
        Find(key) is { Value: YamlMappingNode mapping } ? ToPlain(mapping) : new Dictionary<string, object?>();

    public void RejectUnknownKeys()
    {
        foreach (var (name, entry) in _entries)
        {
            if (_known.Contains(name)) continue;
            var known = _known.Order(StringComparer.Ordinal).ToArray();
            throw Origin.Error(entry.Key, KeyPath(name),
                $"unknown key{(known.Length == 0 ? "" : $" (known here: {string.Join(", ", known)})")}");
        }
    }

    public void Require(bool condition, string key, string problem)
    {
        if (!condition) throw Error(key, problem);
    }

    private long ParseLong(string key, string text) =>
        ConfigScalars.TryLong(text, out var value) ? value : throw Error(key, $"expected an integer, got '{text}'");

    private string ScalarText(string key, YamlNode value) =>
        value is YamlScalarNode scalar ? scalar.Value ?? "" : throw Error(key, $"expected a single value, got {Describe(value)}");

    private string[] Items(string key, YamlNode value) => value switch
    {
        YamlScalarNode scalar => [scalar.Value ?? ""],
        YamlSequenceNode sequence => sequence.Children
            .Select(item => item is YamlScalarNode s ? s.Value ?? "" : throw Error(key, $"expected a list of single values, got an item that is {Describe(item)}"))
            .ToArray(),
        _ => throw Error(key, $"expected a list, got {Describe(value)}"),
    };

    private static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        _ => "a single value",
    };

    internal static IReadOnlyDictionary<string, object?> ToPlain(YamlMappingNode mapping) =>
        mapping.Children.ToDictionary(entry => ((YamlScalarNode)entry.Key).Value ?? "", entry => ToPlain(entry.Value), StringComparer.Ordinal);

    private static object? ToPlain(YamlNode node) => node switch
    {
        YamlMappingNode mapping => ToPlain(mapping),
        YamlSequenceNode sequence => sequence.Children.Select(ToPlain).ToArray(),
        YamlScalarNode scalar => ConfigScalars.Natural(scalar),
        _ => null,
    };
}
