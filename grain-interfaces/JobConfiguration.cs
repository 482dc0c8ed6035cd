using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Text;
using RAE.Configuration;

namespace RAE.GrainInterfaces;

/// <summary>
/// A validated configuration as it travels between client, registry, job grains and workers: its canonical YAML
/// (<see cref="RaeConfig.ToYaml"/>, overrides applied, defaults written out) and that text's SHA-256. Built once from a
/// parsed <see cref="RaeConfig"/>; a receiver turns it back into typed options with <see cref="Parse"/> (once per activation).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record JobConfiguration
{
    [Id(0)] public string Yaml { get; init; } = "";
    /// <summary>Lower-case hex SHA-256 of the UTF-8 <see cref="Yaml"/>.</summary>
    [Id(1)] public string Sha256 { get; init; } = "";
    /// <summary>Where the configuration came from (a file path), for error messages.</summary>
    [Id(2)] public string SourceName { get; init; } = "";

    public static JobConfiguration From(RaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var yaml = config.ToYaml();
        return new JobConfiguration { Yaml = yaml, Sha256 = HashOf(yaml), SourceName = config.SourceName };
    }

    /// <summary>
    /// The typed configuration. Throws <see cref="RaeJobException"/> when the text does not match its hash or is not a valid
    /// configuration (a contract built by anything but <see cref="From"/>).
    /// </summary>
    public RaeConfig Parse()
    {
        if (!string.Equals(HashOf(Yaml), Sha256, StringComparison.OrdinalIgnoreCase))
            throw new RaeJobException($"The configuration '{SourceName}' does not match its SHA-256 {Sha256}; it was changed after it was validated.");
        ConfigurationTelemetry.RecordParse(Sha256);
        try
        {
            return RaeConfig.Parse(Yaml, SourceName);
        }
        catch (ConfigException error)
        {
            throw new RaeJobException($"Bad configuration: {error.Message}", error);
        }
    }

    public static string HashOf(string yaml) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(yaml)));
}

/// <summary><c>rae.config.parses</c> counts every <see cref="JobConfiguration.Parse"/> (tag: sha256), so tests can prove who parses.</summary>
public static class ConfigurationTelemetry
{
    public const string MeterName = "RAE.Configuration";
    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Parses = Meter.CreateCounter<long>("rae.config.parses", unit: "{parse}");
    private static readonly ConcurrentDictionary<string, long> ParsesBySha256 = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>How many times this process parsed the configuration with this SHA-256.</summary>
    public static long ParseCount(string sha256) => ParsesBySha256.GetValueOrDefault(sha256);

    internal static void RecordParse(string sha256)
    {
        ParsesBySha256.AddOrUpdate(sha256, 1, (_, count) => count + 1);
        Parses.Add(1, new KeyValuePair<string, object?>("sha256", sha256));
    }
}
