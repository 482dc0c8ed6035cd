using System.Text.RegularExpressions;

namespace RAE.Grains.Storage;

/// <summary>
/// Rules shared by every back end so that a path or metadata that works on one works on all: relative,
/// '/'-separated, no empty, '.' or '..' segments, no segment starting with '.', at most 1024 characters, printable
/// characters only. Metadata keys are lower-case identifiers; keys starting with "rae_" are reserved for the store.
/// </summary>
public static partial class BlobPath
{
    public const int MaxLength = 1024;
    internal const string ReservedMetadataPrefix = "rae_";

    public static string Validate(string path, string parameterName = "path")
    {
        ArgumentNullException.ThrowIfNull(path, parameterName);
        string? problem = path.Length switch
        {
            0 => "is empty",
            > MaxLength => $"is {path.Length} characters long (at most {MaxLength})",
            _ => null,
        };
        problem ??= path.StartsWith('/') ? "starts with '/' (paths are relative)"
            : path.Contains('\\') ? "contains '\\' (use '/')"
            : path.Any(char.IsControl) ? "contains a control character"
            : null;
        if (problem is null)
        {
            foreach (var segment in path.Split('/'))
            {
                if (segment.Length == 0) { problem = "has an empty segment ('//' or a trailing '/')"; break; }
                if (segment.StartsWith('.')) { problem = $"has segment '{segment}' starting with '.' (reserved)"; break; }
                if (segment.Trim() != segment) { problem = $"has segment '{segment}' with surrounding spaces"; break; }
            }
        }

        return problem is null ? path : throw new ArgumentException($"blob path '{path}' {problem}", parameterName);
    }

    /// <summary>A listing prefix: "" or the start of a valid path (it may end with '/').</summary>
    public static string ValidatePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (prefix.Length == 0) return prefix;
        Validate(prefix.EndsWith('/') ? prefix[..^1] : prefix, nameof(prefix));
        return prefix;
    }

    public static IReadOnlyDictionary<string, string> ValidateMetadata(IReadOnlyDictionary<string, string>? metadata)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (metadata is null) return result;
        foreach (var (key, value) in metadata)
        {
            if (!MetadataKeyPattern().IsMatch(key))
                throw new ArgumentException($"metadata key '{key}' must match [a-z_][a-z0-9_]{{0,63}}", nameof(metadata));
            if (key.StartsWith(ReservedMetadataPrefix, StringComparison.Ordinal))
                throw new ArgumentException($"metadata key '{key}' uses the reserved prefix '{ReservedMetadataPrefix}'", nameof(metadata));
            if (value is null || value.Any(c => c < 0x20 || c > 0x7e))
                throw new ArgumentException($"metadata value of '{key}' must be printable ASCII", nameof(metadata));
            result[key] = value;
        }

        return result;
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,63}$")]
    private static partial Regex MetadataKeyPattern();
}
