namespace RAE.Models.Data;

/// <summary>A dataset written by <see cref="DirectoryDatasetSink"/>: its manifest and checksum-verified shards.</summary>
public sealed class LocalDataset
{
    private readonly string _folder;

    private LocalDataset(string folder, DatasetManifest manifest)
    {
        _folder = folder;
        Manifest = manifest;
    }

    public DatasetManifest Manifest { get; }

    public static LocalDataset Open(string folder)
    {
        var manifestPath = Path.Combine(folder, DatasetManifest.FileName);
        if (!File.Exists(manifestPath))
            throw new FileNotFoundException($"no dataset in {folder}: {DatasetManifest.FileName} is missing", manifestPath);
        return new LocalDataset(folder, DatasetManifest.FromJson(File.ReadAllText(manifestPath), manifestPath));
    }

    public IReadOnlyList<ShardImage> ReadShard(int index)
    {
        if (index < 0 || index >= Manifest.Shards.Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"dataset '{Manifest.Name}' has {Manifest.Shards.Count} shards; there is no shard {index}");
        var entry = Manifest.Shards[index];
        var path = Path.Combine(_folder, entry.File);
        if (!File.Exists(path)) throw new FileNotFoundException($"dataset '{Manifest.Name}' is missing its shard {entry.File}", path);
        return Manifest.ReadShard(entry, File.ReadAllBytes(path));
    }

    public IEnumerable<ShardImage> Images() => Enumerable.Range(0, Manifest.Shards.Count).SelectMany(ReadShard);
}
