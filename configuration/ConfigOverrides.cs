using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace RAE.Configuration;

/// <summary>
/// Applies <c>key.path=value</c> overrides (for <c>rae train --set training.global_batch_size=8</c>) to a parsed YAML tree before
/// it is read, so they are validated exactly like the file. The value is YAML: <c>8</c>, <c>2e-4</c>, <c>[1152, 2048]</c>,
/// <c>'text'</c>, <c>null</c>; an empty value is null. Missing mappings on the path are created.
/// </summary>
internal static class ConfigOverrides
{
    /// <summary>Keys with an alternative spelling: setting one replaces the other, so a file's <c>t-min</c> can be overridden as <c>t_min</c>.</summary>
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.Ordinal)
    {
        ["t_min"] = "t-min", ["t-min"] = "t_min", ["t_max"] = "t-max", ["t-max"] = "t_max",
        ["log_interval"] = "log_every", ["log_every"] = "log_interval",
    };

    public static void Apply(YamlMappingNode root, string assignment, ConfigOrigin origin)
    {
        var equals = assignment.IndexOf('=');
        var path = equals < 0 ? "" : assignment[..equals].Trim();
        var keys = path.Split('.');
        if (equals <= 0 || keys.Any(key => key.Length == 0))
            throw new ConfigException($"override '{assignment}'", null, null, "expected the form key.path=value, for example training.global_batch_size=8");
        var value = ParseValue(assignment, path, assignment[(equals + 1)..]);

        var mapping = root;
        for (var depth = 0; depth < keys.Length - 1; depth++)
        {
            var existing = Find(mapping, keys[depth]);
            if (existing is null || ConfigScalars.IsNull(existing.Value.Value))
            {
                var created = new YamlMappingNode();
                Replace(mapping, keys[depth], created, assignment, origin);
                mapping = created;
            }
            else
            {
                mapping = existing.Value.Value as YamlMappingNode ?? throw new ConfigException($"override '{assignment}'",
                    string.Join('.', keys[..(depth + 1)]), null, $"is a single value or a list, so '{path}' cannot be set inside it");
            }
        }
        var last = keys[^1];
        if (Aliases.TryGetValue(last, out var alias) && Find(mapping, alias) is { } aliased) mapping.Children.Remove(aliased.Key);
        Replace(mapping, last, value, assignment, origin);
    }

    private static YamlNode ParseValue(string assignment, string path, string text)
    {
        if (string.IsNullOrWhiteSpace(text)) return new YamlScalarNode("null") { Style = ScalarStyle.Plain };
        try
        {
            YamlNestingGuard.Check(text, $"override '{assignment}'");
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            return stream.Documents.Count == 1 ? stream.Documents[0].RootNode
                : throw new ConfigException($"override '{assignment}'", path, null, $"'{text}' is not a single YAML value");
        }
        catch (YamlException error)
        {
            throw new ConfigException($"override '{assignment}'", path, null, $"'{text}' is not valid YAML: {error.Message}", error);
        }
    }

    private static (YamlNode Key, YamlNode Value)? Find(YamlMappingNode mapping, string key)
    {
        foreach (var (candidate, value) in mapping.Children)
            if (candidate is YamlScalarNode scalar && scalar.Value == key) return (candidate, value);
        return null;
    }

    private static void Replace(YamlMappingNode mapping, string key, YamlNode value, string assignment, ConfigOrigin origin)
    {
        if (Find(mapping, key) is { } existing) mapping.Children.Remove(existing.Key);
        var keyNode = new YamlScalarNode(key);
        mapping.Children.Add(keyNode, value);
        origin.MarkOverride(keyNode, assignment);
        origin.MarkOverride(value, assignment);
    }
}
