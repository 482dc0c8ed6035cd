using System.Text.Json;
using System.Text.Json.Serialization;

namespace RAE.Models.Data;

/// <summary>One latent shard: the encoding of one image shard (<paramref name="SourceShard"/>) of the source dataset.</summary>
public sealed record LatentShardEntry(string File, string SourceShard, int Count, long Bytes, string Sha256);

/// <summary>
/// Where the latent statistics of a latent dataset are stored, relative to the dataset's folder: the reference
/// <c>stat.pt</c> layout (<c>mean</c>, <c>var</c>, each <c>[C, H, W]</c>) and a safetensors copy with the same keys.
/// <paramref name="Method"/> is <c>exact</c> (float64 moments merged shard by shard, order-independent) or <c>momentum</c>
/// (the reference's running rule, spec §9.1).
/// </summary>
public sealed record LatentStatisticsEntry(string StatPt, string Safetensors, long Count, string Method);

/// <summary>
/// What a latent dataset holds (blob layout <c>latents/NAME/</c>: <c>shard-00000.safetensors</c>, …, <c>stat.pt</c>,
/// <c>stat.safetensors</c> and this <c>manifest.json</c>, written last: a latent dataset without a manifest is not
/// committed). Each shard is a <see cref="LatentShard"/> file encoding one image shard of <see cref="Dataset"/>, in the
/// same order, so that latent <c>i</c> of the dataset is image <c>i</c> of the source dataset. Nothing time-dependent, so
/// the same dataset, encoder and options always give the same manifest.
/// </summary>
public sealed record LatentDatasetManifest
{
    public const string FileName = "manifest.json";
    public const int CurrentVersion = 1;

    public int Version { get; init; } = CurrentVersion;

    /// <summary>Name of the latent dataset (validated like a dataset name).</summary>
    public required string Name { get; init; }

    /// <summary>Name of the image dataset that was encoded.</summary>
    public required string Dataset { get; init; }

    /// <summary>SHA-256 of the source dataset's manifest JSON: a latent dataset belongs to exactly one version of it.</summary>
    public required string DatasetManifestSha256 { get; init; }

    /// <summary>The frozen encoder as the config names it (e.g. <c>resnet18</c>, <c>dinov2</c>), with its input size.</summary>
    public required string Encoder { get; init; }

    /// <summary>SHA-256 of the canonical YAML of the config whose <c>stage_1</c> section encoded it.</summary>
    public required string ConfigSha256 { get; init; }

    /// <summary>Side of the square image the encoder saw (after the ADM center crop).</summary>
    public required int ImageSize { get; init; }

    /// <summary><c>[C, H, W]</c> of one latent.</summary>
    public required IReadOnlyList<long> LatentShape { get; init; }

    /// <summary><c>float32</c> or <c>bfloat16</c>.</summary>
    public required string DType { get; init; }

    /// <summary>True when each shard also holds <c>latents_flipped</c> (the latents of the mirrored images).</summary>
    public required bool Flips { get; init; }

    public required IReadOnlyList<string> Classes { get; init; }

    public required IReadOnlyList<int> CountsPerClass { get; init; }

    public required IReadOnlyList<LatentShardEntry> Shards { get; init; }

    public LatentStatisticsEntry? Statistics { get; init; }

    [JsonIgnore]
    public long Count => Shards.Sum(shard => (long)shard.Count);

    public string ToJson() => JsonSerializer.Serialize(this, ManifestJson.Options);

    public static LatentDatasetManifest FromJson(string json, string nameForErrors)
    {
        var manifest = ManifestJson.Read<LatentDatasetManifest>(json, nameForErrors, "latent dataset manifest", CurrentVersion,
            m => m.Version, m => (m.Classes.Count, m.CountsPerClass.Count));
        if (manifest.Count != manifest.CountsPerClass.Sum(count => (long)count))
            throw new InvalidDataException($"{nameForErrors}: the shards hold {manifest.Count} latents but the class counts add up to {manifest.CountsPerClass.Sum()}");
        if (manifest.LatentShape.Count != 3 || manifest.LatentShape.Any(size => size <= 0))
            throw new InvalidDataException($"{nameForErrors}: latent_shape must be [C, H, W] with positive sizes, got [{string.Join(", ", manifest.LatentShape)}]");
        if (manifest.DType is not ("float32" or "bfloat16"))
            throw new InvalidDataException($"{nameForErrors}: dtype must be float32 or bfloat16, got '{manifest.DType}'");
        return manifest;
    }

    /// <summary>Refuses a model whose <c>num_classes</c> cannot hold every class of this latent dataset.</summary>
    public void EnsureFitsClasses(int numClasses)
    {
        if (numClasses < Classes.Count)
            throw new InvalidDataException(
                $"latent dataset '{Name}' has {Classes.Count} classes but the config's num_classes is {numClasses}; set num_classes to at least {Classes.Count}");
    }

    /// <summary>Refuses a model whose latent shape (<c>misc.latent_size</c>) differs from this dataset's.</summary>
    public void EnsureLatentShape(IReadOnlyList<long> expected)
    {
        if (!expected.SequenceEqual(LatentShape))
            throw new InvalidDataException(
                $"latent dataset '{Name}' holds latents [{string.Join(", ", LatentShape)}] but the config expects [{string.Join(", ", expected)}] (misc.latent_size)");
    }

    /// <summary>Reads a latent shard after checking its bytes against this manifest's SHA-256 and its shape.</summary>
    public LatentShard ReadShard(LatentShardEntry entry, byte[] bytes)
    {
        var actual = DatasetManifest.Sha256Hex(bytes);
        if (!string.Equals(actual, entry.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"latent dataset '{Name}' shard {entry.File} fails its checksum (sha256 {actual}, manifest {entry.Sha256})");
        var shard = LatentShard.Read(bytes, $"latent dataset '{Name}' shard {entry.File}", LatentShape.ToArray());
        if (shard.Count != entry.Count)
        {
            var count = shard.Count;
            shard.Dispose();
            throw new InvalidDataException($"latent dataset '{Name}' shard {entry.File} holds {count} latents, the manifest says {entry.Count}");
        }
        return shard;
    }
}
