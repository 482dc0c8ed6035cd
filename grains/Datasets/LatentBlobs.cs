using System.Text.RegularExpressions;
using RAE.GrainInterfaces;
using RAE.Models.Data;

namespace RAE.Grains.Datasets;

/// <summary>
/// Where a latent dataset lives in the blob store: <c>latents/NAME/shard-00000.safetensors</c>, …,
/// <c>latents/NAME/stat.pt</c>, <c>latents/NAME/stat.safetensors</c> and <c>latents/NAME/manifest.json</c>
/// (<see cref="LatentDatasetManifest"/>, written last). Latent shard <c>shard-NNNNN.safetensors</c> encodes image shard
/// <c>shard-NNNNN.bin</c> of the source dataset.
/// </summary>
public static partial class LatentBlobs
{
    public const string Root = "latents";
    public const string StatPtFile = "stat.pt";
    public const string StatSafetensorsFile = "stat.safetensors";

    public static string PrefixOf(string name) => $"{Root}/{DatasetNames.Validate(name)}/";

    public static string ManifestPathOf(string name) => PrefixOf(name) + LatentDatasetManifest.FileName;

    public static string ShardPathOf(string name, string shard) => PrefixOf(name) + ValidateShardName(name, shard);

    public static string StatPtPathOf(string name) => PrefixOf(name) + StatPtFile;

    public static string StatSafetensorsPathOf(string name) => PrefixOf(name) + StatSafetensorsFile;

    /// <summary>The latent shard file that encodes image shard <paramref name="imageShard"/> (<c>shard-NNNNN.bin</c>).</summary>
    public static string LatentShardNameFor(string dataset, string imageShard) =>
        Path.ChangeExtension(DatasetBlobs.ValidateShardName(dataset, imageShard), ".safetensors");

    public static string ValidateShardName(string latents, string shard) =>
        shard is not null && ShardPattern().IsMatch(shard)
            ? shard
            : throw new RaeJobException($"latent dataset '{latents}': '{shard}' is not a latent shard name (expected shard-NNNNN.safetensors)");

    [GeneratedRegex(@"^shard-[0-9]{5,9}\.safetensors$")]
    private static partial Regex ShardPattern();
}
