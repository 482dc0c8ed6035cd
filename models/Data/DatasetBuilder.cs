namespace RAE.Models.Data;

/// <summary>Where a dataset's shards and manifest go (a local folder here; blob storage through the cluster).</summary>
public interface IDatasetSink
{
    void WriteShard(string fileName, byte[] bytes);

    void WriteManifest(DatasetManifest manifest);

    /// <summary>Removes whatever was written: the dataset was refused.</summary>
    void Discard();
}

/// <summary>Writes a dataset into a local folder: <c>shard-00000.bin</c>, … and <c>manifest.json</c>.</summary>
public sealed class DirectoryDatasetSink(string folder) : IDatasetSink
{
    private readonly List<string> _written = [];

    public void WriteShard(string fileName, byte[] bytes)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, fileName);
        File.WriteAllBytes(path, bytes);
        _written.Add(path);
    }

    public void WriteManifest(DatasetManifest manifest)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, DatasetManifest.FileName), manifest.ToJson());
    }

    public void Discard()
    {
        foreach (var path in _written) File.Delete(path);
        _written.Clear();
    }
}

public sealed record DatasetBuildOptions
{
    public int ShardSize { get; init; } = 1000;

    /// <summary>The largest fraction of offered files that may be skipped before the whole dataset is refused.</summary>
    public double MaxBadFraction { get; init; } = 0.1;

    public ImageDecodeLimits Limits { get; init; } = ImageDecodeLimits.Default;

    public void Validate()
    {
        if (ShardSize <= 0) throw new ArgumentOutOfRangeException(nameof(ShardSize), $"shard size must be positive, got {ShardSize}");
        if (MaxBadFraction is < 0 or > 1 || double.IsNaN(MaxBadFraction))
            throw new ArgumentOutOfRangeException(nameof(MaxBadFraction), $"must be in [0, 1], got {MaxBadFraction}");
        Limits.Validate();
    }
}

/// <summary>The dataset was refused as a whole because too many of its files are bad; <see cref="Skipped"/> lists them.</summary>
public sealed class DatasetRefusedException(string name, int offered, IReadOnlyList<SkippedImage> skipped, double maxBadFraction)
    : Exception($"dataset '{name}' refused: {skipped.Count} of {offered} files are bad (more than {maxBadFraction:P1}):"
        + string.Concat(skipped.Take(20).Select(item => $"\n  {item.Name}: {item.Reason}"))
        + (skipped.Count > 20 ? $"\n  … and {skipped.Count - 20} more" : ""))
{
    public IReadOnlyList<SkippedImage> Skipped { get; } = skipped;
}

/// <summary>
/// Validates every image of a source with <see cref="SafeImageDecoder"/> and packs the good ones, in source order, into
/// shards of up to <see cref="DatasetBuildOptions.ShardSize"/> original encoded images. Deterministic: the same source
/// and options give byte-identical shards and manifest. Bad files are skipped and listed; past the bad-fraction
/// threshold the dataset is refused and what was written is discarded.
/// </summary>
public sealed class DatasetBuilder(DatasetBuildOptions? options = null)
{
    private readonly DatasetBuildOptions _options = Validated(options ?? new DatasetBuildOptions());

    public static string ShardFileName(int index) => $"shard-{index:D5}.bin";

    public DatasetManifest Build(string name, IImageSource source, IDatasetSink sink, IProgress<int>? imagesChecked = null)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("a dataset needs a name", nameof(name));
        var decoder = new SafeImageDecoder(_options.Limits);
        var counts = new int[source.Classes.Count];
        var skipped = new List<SkippedImage>();
        var shards = new List<ShardEntry>();
        var pending = new List<ShardImage>(_options.ShardSize);
        var offered = 0;
        try
        {
            foreach (var image in source.Images())
            {
                offered++;
                var reason = Check(image, decoder, out var encoded);
                if (reason is not null) skipped.Add(new SkippedImage(image.Name, reason));
                else
                {
                    counts[image.Label]++;
                    pending.Add(new ShardImage(image.Name, image.Label, encoded!));
                    if (pending.Count == _options.ShardSize) Flush(pending, shards, sink);
                }
                imagesChecked?.Report(offered);
            }
            if (pending.Count > 0) Flush(pending, shards, sink);
            if (offered == 0) throw new ArgumentException($"dataset '{name}': the source {source.Description} holds no files");
            if (skipped.Count > _options.MaxBadFraction * offered || skipped.Count == offered)
                throw new DatasetRefusedException(name, offered, skipped, _options.MaxBadFraction);
        }
        catch
        {
            sink.Discard();
            throw;
        }

        var manifest = new DatasetManifest
        {
            Name = name,
            Source = source.Description,
            Classes = source.Classes,
            CountsPerClass = counts,
            ShardSize = _options.ShardSize,
            Shards = shards,
            Skipped = skipped,
        };
        sink.WriteManifest(manifest);
        return manifest;
    }

    private string? Check(SourceImage image, SafeImageDecoder decoder, out byte[]? encoded)
    {
        encoded = null;
        if (image.Length > _options.Limits.MaxEncodedBytes)
            return $"{image.Length} bytes exceeds the limit of {_options.Limits.MaxEncodedBytes} encoded bytes";
        try
        {
            encoded = image.ReadBytes();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            return $"unreadable: {error.Message}";
        }
        var result = decoder.Decode(encoded);
        if (!result.Succeeded) encoded = null;
        return result.Failure;
    }

    private static void Flush(List<ShardImage> pending, List<ShardEntry> shards, IDatasetSink sink)
    {
        var bytes = ImageShard.Write(pending);
        var file = ShardFileName(shards.Count);
        sink.WriteShard(file, bytes);
        shards.Add(new ShardEntry(file, pending.Count, bytes.Length, DatasetManifest.Sha256Hex(bytes)));
        pending.Clear();
    }

    private static DatasetBuildOptions Validated(DatasetBuildOptions options)
    {
        options.Validate();
        return options;
    }
}
