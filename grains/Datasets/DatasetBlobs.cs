using System.Text.RegularExpressions;
using RAE.GrainInterfaces;
using RAE.Models.Data;

namespace RAE.Grains.Datasets;

/// <summary>
/// Where a dataset lives in the blob store: <c>datasets/NAME/shard-00000.bin</c>, … and <c>datasets/NAME/manifest.json</c>
/// (the models' <see cref="DatasetManifest"/> format, so a dataset copied to a folder opens as a <see cref="LocalDataset"/>).
/// </summary>
public static partial class DatasetBlobs
{
    public const string Root = "datasets";

    public static string PrefixOf(string name) => $"{Root}/{DatasetNames.Validate(name)}/";

    public static string ManifestPathOf(string name) => PrefixOf(name) + DatasetManifest.FileName;

    public static string ShardPathOf(string name, string shard) => PrefixOf(name) + ValidateShardName(name, shard);

    /// <summary>The dataset name of a manifest blob path, or null when the path is something else.</summary>
    public static string? NameOfManifest(string path)
    {
        var parts = path.Split('/');
        return parts.Length == 3 && parts[0] == Root && parts[2] == DatasetManifest.FileName && DatasetNames.Problem(parts[1]) is null ? parts[1] : null;
    }

    public static string ValidateShardName(string dataset, string shard) =>
        shard is not null && ShardPattern().IsMatch(shard)
            ? shard
            : throw new RaeJobException($"dataset '{dataset}': '{shard}' is not a shard name (expected shard-NNNNN.bin)");

    public static DatasetManifest ToManifest(DatasetDescription description) => new()
    {
        Name = description.Name,
        Source = description.Source,
        Classes = description.Classes.ToArray(),
        CountsPerClass = description.CountsPerClass.ToArray(),
        ShardSize = description.ShardSize,
        Shards = description.Shards.Select(s => new ShardEntry(s.File, s.Images, s.Bytes, s.Sha256)).ToArray(),
        Skipped = description.Skipped.Select(s => new SkippedImage(s.Name, s.Reason)).ToArray(),
    };

    public static DatasetDescription ToDescription(DatasetManifest manifest) => new(
        manifest.Name,
        manifest.Source,
        manifest.Classes.ToArray(),
        manifest.CountsPerClass.ToArray(),
        manifest.ShardSize,
        manifest.Shards.Select(s => new DatasetShard(s.File, s.Images, s.Bytes, s.Sha256)).ToArray(),
        manifest.Skipped.Select(s => new DatasetSkippedFile(s.Name, s.Reason)).ToArray());

    [GeneratedRegex(@"^shard-[0-9]{5,9}\.bin$")]
    private static partial Regex ShardPattern();
}
