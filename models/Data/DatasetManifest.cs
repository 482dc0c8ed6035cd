using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RAE.Models.Data;

public sealed record ShardEntry(string File, int Images, long Bytes, string Sha256);

public sealed record SkippedImage(string Name, string Reason);

/// <summary>
/// What a dataset holds: its classes and per-class counts, its shards with their checksums, where it came from and
/// every file that was left out with the reason. Contains nothing time-dependent, so the same source and options
/// always give the same manifest.
/// </summary>
public sealed record DatasetManifest
{
    public const string FileName = "manifest.json";
    public const int CurrentVersion = 1;

    public int Version { get; init; } = CurrentVersion;

    public required string Name { get; init; }

    public required string Source { get; init; }

    public required IReadOnlyList<string> Classes { get; init; }

    public required IReadOnlyList<int> CountsPerClass { get; init; }

    public required int ShardSize { get; init; }

    public required IReadOnlyList<ShardEntry> Shards { get; init; }

    public required IReadOnlyList<SkippedImage> Skipped { get; init; }

    [JsonIgnore]
    public int ImageCount => CountsPerClass.Sum();

    public string ToJson() => JsonSerializer.Serialize(this, ManifestJson.Options);

    public static DatasetManifest FromJson(string json, string nameForErrors)
    {
        var manifest = ManifestJson.Read<DatasetManifest>(json, nameForErrors, "dataset manifest", CurrentVersion,
            m => m.Version, m => (m.Classes.Count, m.CountsPerClass.Count));
        if (manifest.Shards.Sum(shard => shard.Images) != manifest.ImageCount)
            throw new InvalidDataException($"{nameForErrors}: the shards hold {manifest.Shards.Sum(shard => shard.Images)} images but the class counts add up to {manifest.ImageCount}");
        return manifest;
    }

    /// <summary>Refuses a model whose <c>num_classes</c> cannot hold every class of this dataset.</summary>
    public void EnsureFitsClasses(int numClasses)
    {
        if (numClasses < Classes.Count)
            throw new InvalidDataException(
                $"dataset '{Name}' has {Classes.Count} classes but the config's num_classes is {numClasses}; set num_classes to at least {Classes.Count}");
    }

    /// <summary>Reads a shard's images after checking its bytes against this manifest's SHA-256.</summary>
    public IReadOnlyList<ShardImage> ReadShard(ShardEntry entry, byte[] bytes)
    {
        var actual = Sha256Hex(bytes);
        if (!string.Equals(actual, entry.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"dataset '{Name}' shard {entry.File} fails its checksum (sha256 {actual}, manifest {entry.Sha256})");
        var images = ImageShard.Read(bytes, $"dataset '{Name}' shard {entry.File}");
        if (images.Count != entry.Images)
            throw new InvalidDataException($"dataset '{Name}' shard {entry.File} holds {images.Count} images, the manifest says {entry.Images}");
        return images;
    }

    public static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
