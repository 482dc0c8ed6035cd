using System.CommandLine;

namespace RAE.Client.Commands;

/// <summary>Small builders for options that several commands declare the same way.</summary>
public static class CliOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Print machine-readable JSON instead of text" };

    /// <summary>A repeatable option (`--set a=1 --set b=2`), one value per occurrence.</summary>
    public static Option<string[]> Repeatable(string name, string helpName, string description) =>
        new(name) { HelpName = helpName, Description = description, DefaultValueFactory = _ => [] };

    /// <summary>A text option limited to <paramref name="choices"/>; anything else is a usage error naming the option and the choices.</summary>
    public static Option<string> Choice(string name, string description, string? defaultValue, params string[] choices)
    {
        var option = new Option<string>(name) { HelpName = string.Join('|', choices), Description = description };
        if (defaultValue is not null) option.DefaultValueFactory = _ => defaultValue;
        option.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>();
            if (value is not null && !choices.Contains(value, StringComparer.Ordinal))
                result.AddError($"{name} expects {string.Join(", ", choices[..^1])} or {choices[^1]}, got '{value}'");
        });
        return option;
    }
}
