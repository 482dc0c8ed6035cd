using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace RAE.Configuration;

/// <summary>
/// Refuses YAML that nests deeper, or expands through aliases to more nodes, than a configuration ever needs, before
/// YamlDotNet builds its node tree: building recurses once per level, so a few hundred kilobytes of '[' would
/// overflow the stack and kill the process, and a chain of aliases ("billion laughs") is exponentially large once
/// walked. The check follows the parser's events, which YamlDotNet produces without recursion.
/// </summary>
internal static class YamlNestingGuard
{
    /// <summary>Most levels of mappings and sequences a configuration (or a --set value) may nest; real ones use four.</summary>
    public const int MaxDepth = 64;

    /// <summary>Most nodes a document may hold with every alias expanded; real configurations hold a few hundred.</summary>
    public const long MaxExpandedNodes = 100_000;

    /// <exception cref="ConfigException">The text nests deeper than <paramref name="maxDepth"/>, expands beyond <see cref="MaxExpandedNodes"/> or cannot be scanned.</exception>
    /// <exception cref="YamlException">The text is not valid YAML (callers report it as they report any parse error).</exception>
    public static void Check(string yamlText, string sourceName, int maxDepth = MaxDepth)
    {
        var parser = new Parser(new StringReader(yamlText));
        // One frame per open collection: its anchor and the expanded size of what it holds so far.
        var open = new Stack<(string? Anchor, long Size)>();
        var anchorSizes = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        while (NextEvent(parser, sourceName))
        {
            var current = parser.Current!;
            long added = 0;
            switch (current)
            {
                case MappingStart or SequenceStart:
                    if (open.Count >= maxDepth)
                        throw Refused(sourceName, current, $"mappings and sequences nest deeper than {maxDepth} levels (limit YamlNestingGuard.MaxDepth)");
                    var anchor = ((NodeEvent)current).Anchor;
                    open.Push((anchor.IsEmpty ? null : anchor.Value, 1));
                    added = 1;
                    break;
                case MappingEnd or SequenceEnd:
                    var (closedAnchor, size) = open.Pop();
                    if (closedAnchor is not null) anchorSizes[closedAnchor] = size;
                    AddToInnermost(open, size);
                    continue;
                case Scalar scalar:
                    if (!scalar.Anchor.IsEmpty) anchorSizes[scalar.Anchor.Value] = 1;
                    added = 1;
                    AddToInnermost(open, added);
                    break;
                case AnchorAlias alias:
                    added = anchorSizes.GetValueOrDefault(alias.Value.Value, 1);
                    AddToInnermost(open, added);
                    break;
            }
            total += added;
            if (total > MaxExpandedNodes)
                throw Refused(sourceName, current, $"the document expands to more than {MaxExpandedNodes} nodes once its aliases are resolved (limit YamlNestingGuard.MaxExpandedNodes)");
        }
    }

    private static void AddToInnermost(Stack<(string? Anchor, long Size)> open, long size)
    {
        if (open.Count == 0) return;
        var (anchor, current) = open.Pop();
        open.Push((anchor, current + size));
    }

    private static ConfigException Refused(string sourceName, ParsingEvent at, string problem)
    {
        var line = at.Start.Line;
        return new ConfigException(sourceName, null, line > 0 ? (int)line : null, problem);
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
