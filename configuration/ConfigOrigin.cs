using YamlDotNet.RepresentationModel;

namespace RAE.Configuration;

/// <summary>Where the nodes of one configuration tree came from: the file, or a <c>--set</c> override that replaced them.</summary>
internal sealed class ConfigOrigin
{
    private readonly Dictionary<YamlNode, string> _overrideSources = new(ReferenceEqualityComparer.Instance);

    public ConfigOrigin(string sourceName) => SourceName = sourceName;

    public string SourceName { get; }

    public void MarkOverride(YamlNode node, string overrideText)
    {
        _overrideSources[node] = overrideText;
        switch (node)
        {
            case YamlMappingNode mapping:
                foreach (var (key, value) in mapping.Children)
                {
                    MarkOverride(key, overrideText);
                    MarkOverride(value, overrideText);
                }
                break;
            case YamlSequenceNode sequence:
                foreach (var item in sequence.Children) MarkOverride(item, overrideText);
                break;
        }
    }

    public ConfigException Error(YamlNode? node, string? keyPath, string problem)
    {
        if (node is not null && _overrideSources.TryGetValue(node, out var overrideText))
            return new ConfigException($"override '{overrideText}' (on {SourceName})", keyPath, null, problem);
        var line = node is null || node.Start.Line <= 0 ? (int?)null : (int)node.Start.Line;
        return new ConfigException(SourceName, keyPath, line, problem);
    }
}
