using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace RAE.Configuration;

/// <summary>Builds the canonical YAML of a configuration: strings single-quoted, floats always with '.', lists in flow style.</summary>
internal sealed class YamlMapBuilder
{
    public YamlMappingNode Node { get; } = new();

    public YamlMapBuilder Add(string key, string? value) =>
        Put(key, value is null ? Null() : new YamlScalarNode(value) { Style = ScalarStyle.SingleQuoted });

    public YamlMapBuilder Add(string key, double value) => Put(key, Plain(ConfigScalars.FormatDouble(value)));

    public YamlMapBuilder Add(string key, double? value) => value is { } v ? Add(key, v) : Put(key, Null());

    public YamlMapBuilder Add(string key, long value) => Put(key, Plain(ConfigScalars.FormatLong(value)));

    public YamlMapBuilder Add(string key, long? value) => value is { } v ? Add(key, v) : Put(key, Null());

    /// <summary>Adds the value only when it is set (optional legacy or extension keys stay out of the canonical YAML).</summary>
    public YamlMapBuilder AddIfSet(string key, long? value) => value is { } v ? Add(key, v) : this;

    public YamlMapBuilder AddIfSet(string key, double? value) => value is { } v ? Add(key, v) : this;

    public YamlMapBuilder AddIfSet(string key, string? value) => value is null ? this : Add(key, value);

    public YamlMapBuilder Add(string key, bool value) => Put(key, Plain(value ? "true" : "false"));

    public YamlMapBuilder Add(string key, IEnumerable<long> values) =>
        Put(key, Flow(values.Select(value => Plain(ConfigScalars.FormatLong(value)))));

    public YamlMapBuilder Add(string key, IEnumerable<int> values) => Add(key, values.Select(value => (long)value));

    public YamlMapBuilder Add(string key, IEnumerable<double> values) =>
        Put(key, Flow(values.Select(value => Plain(ConfigScalars.FormatDouble(value)))));

    public YamlMapBuilder Add(string key, IEnumerable<string> values) =>
        Put(key, Flow(values.Select(value => new YamlScalarNode(value) { Style = ScalarStyle.SingleQuoted })));

    /// <summary>Adds a nested mapping; a null section is left out.</summary>
    public YamlMapBuilder Add(string key, YamlMapBuilder? section) => section is null ? this : Put(key, section.Node);

    public YamlMapBuilder Put(string key, YamlNode value)
    {
        Node.Add(new YamlScalarNode(key), value);
        return this;
    }

    private static YamlScalarNode Plain(string text) => new(text) { Style = ScalarStyle.Plain };

    private static YamlScalarNode Null() => Plain("null");

    private static YamlSequenceNode Flow(IEnumerable<YamlNode> items) => new(items) { Style = SequenceStyle.Flow };
}
