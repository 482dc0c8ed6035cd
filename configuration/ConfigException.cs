namespace RAE.Configuration;

/// <summary>
/// A configuration file (or a <c>--set</c> override) that cannot be read: names the full dotted key, the source
/// (file path or override text) and, where known, the 1-based line.
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string source, string? keyPath, int? line, string problem, Exception? inner = null)
        : base(Format(source, keyPath, line, problem), inner)
    {
        SourceName = source;
        KeyPath = keyPath;
        Line = line;
        Problem = problem;
    }

    /// <summary>The file path, "&lt;text&gt;" name, or "--set key=value" override the problem comes from.</summary>
    public string SourceName { get; }

    /// <summary>Full dotted key, for example <c>training.optimizer.lr</c>; null when the problem is the whole document.</summary>
    public string? KeyPath { get; }

    public int? Line { get; }

    public string Problem { get; }

    private static string Format(string source, string? keyPath, int? line, string problem)
    {
        var where = line is null ? source : $"{source}:{line}";
        return keyPath is null ? $"{where}: {problem}" : $"{where}: '{keyPath}': {problem}";
    }
}
