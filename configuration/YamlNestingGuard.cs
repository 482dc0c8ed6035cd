using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace RAE.Configuration;

/// <summary>
/// Refuses YAML that nests deeper than a configuration ever needs before YamlDotNet builds its node tree: building
/// recurses once per level, so a few hundred kilobytes of '[' would overflow the stack and kill the process. The
/// check walks the parser's events, which YamlDotNet produces without recursion.
/// </summary>
internal static class YamlNestingGuard
{
    /// <summary>Most levels of mappings and sequences a configuration (or a --set value) may nest; real ones use four.</summary>
    public const int MaxDepth = 64;

    /// <exception cref="ConfigException">The text nests deeper than <paramref name="maxDepth"/>.</exception>
    /// <exception cref="YamlException">The text is not valid YAML (callers report it as they report any parse error).</exception>
    public static void Check(string yamlText, string sourceName, int maxDepth = MaxDepth)
    {
        var parser = new Parser(new StringReader(yamlText));
        var depth = 0;
        while (NextEvent(parser, sourceName))
        {
            switch (parser.Current)
            {
                case MappingStart or SequenceStart:
                    if (++depth > maxDepth)
                    {
                        var line = parser.Current.Start.Line;
                        throw new ConfigException(sourceName, null, line > 0 ? (int)line : null,
                            $"mappings and sequences nest deeper than {maxDepth} levels (limit YamlNestingGuard.MaxDepth)");
                    }
                    break;
                case MappingEnd or SequenceEnd:
                    depth--;
                    break;
            }
        }
    }

    // YamlDotNet 18.1's scanner throws a bare InvalidOperationException on some malformed plain scalars (found by
    // fuzzing); it is still malformed YAML, so it gets the same error as any other parse failure.
    private static bool NextEvent(Parser parser, string sourceName)
    {
        try
        {
            return parser.MoveNext();
        }
        catch (InvalidOperationException error)
        {
            throw new ConfigException(sourceName, null, null, "not valid YAML: the YAML scanner could not read it", error);
        }
    }
}
