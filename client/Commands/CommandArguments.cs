namespace RAE.Client.Commands;

/// <summary>Positional words and --options of one command line. "--name value", "--name=value" and bare "--flag" forms.</summary>
public sealed class CommandArguments
{
    private readonly Dictionary<string, List<string?>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    public CommandArguments(IEnumerable<string> words, IReadOnlySet<string>? flags = null)
    {
        var positional = new List<string>();
        var list = words.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            var word = list[i];
            if (!word.StartsWith("--", StringComparison.Ordinal) || word == "--")
            {
                positional.Add(word);
                continue;
            }
            var name = word[2..];
            var equals = name.IndexOf('=');
            if (equals >= 0)
            {
                Add(name[..equals], name[(equals + 1)..]);
            }
            else if (flags?.Contains(name) == true || i + 1 >= list.Count || list[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                Add(name, null);
            }
            else
            {
                Add(name, list[++i]);
            }
        }
        Positional = positional;
    }

    private void Add(string name, string? value)
    {
        if (!_options.TryGetValue(name, out var values)) _options[name] = values = [];
        values.Add(value);
    }

    public IReadOnlyList<string> Positional { get; }

    public bool Flag(string name)
    {
        _consumed.Add(name);
        return _options.TryGetValue(name, out var values) && values[^1] is null or "true" or "1";
    }

    public string? Option(string name)
    {
        _consumed.Add(name);
        return _options.TryGetValue(name, out var values) ? values[^1] : null;
    }

    /// <summary>Every value of a repeatable option, in command-line order (for example several --set key=value).</summary>
    public IReadOnlyList<string> Options(string name)
    {
        _consumed.Add(name);
        return _options.TryGetValue(name, out var values) ? values.Where(v => v is not null).Select(v => v!).ToList() : [];
    }

    public double Double(string name, double fallback)
    {
        var text = Option(name);
        if (text is null) return fallback;
        return double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value : throw new UsageException($"--{name} expects a number, got '{text}'");
    }

    public int Int(string name, int fallback)
    {
        var text = Option(name);
        if (text is null) return fallback;
        return int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value : throw new UsageException($"--{name} expects an integer, got '{text}'");
    }

    /// <summary>Throws when an option was given that the command never asked for (call after reading all options).</summary>
    public void RejectUnknownOptions()
    {
        var unknown = _options.Keys.Where(k => !_consumed.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UsageException($"unknown option(s): {string.Join(", ", unknown.Select(u => "--" + u))}");
    }
}

public sealed class UsageException(string message) : Exception(message);
