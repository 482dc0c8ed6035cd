using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace RAE.Configuration;

/// <summary>YAML 1.1 / OmegaConf scalar reading (null, booleans, numbers) and the inverse formatting used when writing.</summary>
internal static class ConfigScalars
{
    private static readonly HashSet<string> NullWords = new(StringComparer.Ordinal) { "", "~", "null", "Null", "NULL" };
    private static readonly HashSet<string> TrueWords = new(StringComparer.OrdinalIgnoreCase) { "true", "yes", "on" };
    private static readonly HashSet<string> FalseWords = new(StringComparer.OrdinalIgnoreCase) { "false", "no", "off" };

    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode scalar && IsPlain(scalar) && NullWords.Contains(scalar.Value ?? "");

    public static bool IsPlain(YamlScalarNode scalar) => scalar.Style is ScalarStyle.Plain or ScalarStyle.Any;

    public static bool TryBool(string text, out bool value)
    {
        value = TrueWords.Contains(text);
        return value || FalseWords.Contains(text);
    }

    public static bool TryDouble(string text, out double value)
    {
        var trimmed = text.Trim().Replace("_", "", StringComparison.Ordinal);
        switch (trimmed.ToLowerInvariant())
        {
            case ".inf" or "+.inf": value = double.PositiveInfinity; return true;
            case "-.inf": value = double.NegativeInfinity; return true;
            case ".nan": value = double.NaN; return true;
        }
        return double.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out value)
               && !trimmed.Contains("infinity", StringComparison.OrdinalIgnoreCase) && trimmed.ToLowerInvariant() != "nan";
    }

    public static bool TryLong(string text, out long value) =>
        long.TryParse(text.Trim().Replace("_", "", StringComparison.Ordinal), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);

    /// <summary>A plain scalar as the natural .NET value (null, bool, long, double or string); quoted scalars stay strings.</summary>
    public static object? Natural(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (!IsPlain(scalar)) return text;
        if (NullWords.Contains(text)) return null;
        if (TryBool(text, out var flag)) return flag;
        if (TryLong(text, out var integer)) return integer;
        if (TryDouble(text, out var number)) return number;
        return text;
    }

    /// <summary>Python-compatible float text: always has a '.' or an exponent PyYAML/OmegaConf read as a float.</summary>
    public static string FormatDouble(double value)
    {
        if (double.IsPositiveInfinity(value)) return ".inf";
        if (double.IsNegativeInfinity(value)) return "-.inf";
        if (double.IsNaN(value)) return ".nan";
        var text = value.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
        var exponent = text.IndexOf('e');
        var mantissa = exponent < 0 ? text : text[..exponent];
        if (!mantissa.Contains('.')) mantissa += ".0";
        return exponent < 0 ? mantissa : mantissa + text[exponent..];
    }

    public static string FormatLong(long value) => value.ToString(CultureInfo.InvariantCulture);
}
