using System.Text.Json;
using System.Text.Json.Serialization;

namespace RAE.Models.Data;

/// <summary>The JSON form shared by dataset and latent dataset manifests, and the checks both make when reading one.</summary>
internal static class ManifestJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Parses a manifest of <paramref name="kind"/> and checks its version and that classes and class counts pair up.</summary>
    public static T Read<T>(string json, string nameForErrors, string kind, int currentVersion,
        Func<T, int> version, Func<T, (int Classes, int Counts)> classes) where T : class
    {
        T? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<T>(json, Options);
        }
        catch (JsonException error)
        {
            throw new InvalidDataException($"{nameForErrors} is not a valid {kind}: {error.Message}", error);
        }
        if (manifest is null) throw new InvalidDataException($"{nameForErrors} is empty");
        if (version(manifest) != currentVersion)
            throw new InvalidDataException($"{nameForErrors} has {kind} version {version(manifest)}; this build reads version {currentVersion}");
        var (classCount, countCount) = classes(manifest);
        if (countCount != classCount)
            throw new InvalidDataException($"{nameForErrors} lists {classCount} classes but {countCount} class counts");
        return manifest;
    }
}
