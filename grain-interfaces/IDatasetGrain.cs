using System.Text.RegularExpressions;

namespace RAE.GrainInterfaces;

/// <summary>One shard of an image dataset: its file name under <c>datasets/NAME/</c>, image count, size and SHA-256.</summary>
[GenerateSerializer, Immutable]
public sealed record DatasetShard(
    [property: Id(0)] string File,
    [property: Id(1)] int Images,
    [property: Id(2)] long Bytes,
    [property: Id(3)] string Sha256);

/// <summary>A source file left out of a dataset, with the reason.</summary>
[GenerateSerializer, Immutable]
public sealed record DatasetSkippedFile([property: Id(0)] string Name, [property: Id(1)] string Reason);

/// <summary>What a committed dataset holds (its manifest): classes in label order, images per class, shards, source
/// and every skipped file.</summary>
[GenerateSerializer, Immutable]
public sealed record DatasetDescription(
    [property: Id(0)] string Name,
    [property: Id(1)] string Source,
    [property: Id(2)] IReadOnlyList<string> Classes,
    [property: Id(3)] IReadOnlyList<int> CountsPerClass,
    [property: Id(4)] int ShardSize,
    [property: Id(5)] IReadOnlyList<DatasetShard> Shards,
    [property: Id(6)] IReadOnlyList<DatasetSkippedFile> Skipped)
{
    public int ImageCount => CountsPerClass.Sum();

    public long TotalBytes => Shards.Sum(shard => shard.Bytes);
}

/// <summary>One piece of a shard on its way up: it must start where the previous chunk of that shard ended, and its
/// bytes must hash to <see cref="Sha256"/> (lower- or upper-case hex).</summary>
[GenerateSerializer, Immutable]
public sealed record DatasetChunk(
    [property: Id(0)] string UploadId,
    [property: Id(1)] string Shard,
    [property: Id(2)] long Offset,
    [property: Id(3)] byte[] Data,
    [property: Id(4)] string Sha256);

/// <summary>
/// One image dataset in the blob store (key: the dataset's name, see <see cref="DatasetNames"/>). An upload goes
/// <see cref="BeginUpload"/> → <see cref="WriteChunk"/>… → <see cref="FinishShard"/> per shard → <see cref="Commit"/>;
/// only a commit writes the manifest, so a half-uploaded dataset is never listed or shown. Every refusal is a
/// <see cref="RaeJobException"/> whose message names the dataset and the problem.
/// </summary>
public interface IDatasetGrain : IGrainWithStringKey
{
    /// <summary>Largest <see cref="DatasetChunk.Data"/> accepted, far below Orleans' message size limit.</summary>
    public const int MaxChunkBytes = 8 * 1024 * 1024;

    /// <summary>Starts an upload and returns its id; refused when the dataset exists (remove it first). Leftovers of an
    /// earlier upload that never committed are discarded.</summary>
    Task<string> BeginUpload();

    /// <summary>Appends a chunk to a shard after checking its SHA-256; a chunk that fails is refused and changes nothing.</summary>
    Task WriteChunk(DatasetChunk chunk);

    /// <summary>Stores the shard assembled from its chunks; returns its size and SHA-256 as stored.</summary>
    Task<DatasetShard> FinishShard(string uploadId, string shard);

    /// <summary>Checks that the stored shards are exactly those of <paramref name="manifest"/>, with its sizes and
    /// checksums, then writes the manifest: from here on the dataset is listed.</summary>
    Task<DatasetDescription> Commit(string uploadId, DatasetDescription manifest);

    /// <summary>Drops an upload and whatever it stored (no-op when that upload is no longer in progress).</summary>
    Task Abort(string uploadId);

    /// <summary>The committed dataset; <see cref="RaeJobException"/> naming it when there is none.</summary>
    Task<DatasetDescription> Describe();

    /// <summary>Removes the dataset (manifest first, then its shards); false when there was none.</summary>
    Task<bool> Remove();
}

/// <summary>Every committed dataset of the cluster's blob store (key: 0).</summary>
public interface IDatasetCatalogGrain : IGrainWithIntegerKey
{
    Task<IReadOnlyList<DatasetDescription>> List();
}

/// <summary>Dataset names: 1..64 characters of [a-z0-9-_], starting with a letter or digit, so that a name is always
/// one safe blob-path segment.</summary>
public static partial class DatasetNames
{
    public const int MaxLength = 64;

    /// <summary>Null when <paramref name="name"/> is valid, else why not.</summary>
    public static string? Problem(string? name) => name switch
    {
        null or "" => "a dataset needs a name",
        { Length: > MaxLength } => $"dataset name '{name[..MaxLength]}…' is {name.Length} characters long (at most {MaxLength})",
        _ when !Pattern().IsMatch(name) =>
            $"dataset name '{name}' is not allowed: use lower-case letters, digits, '-' and '_', starting with a letter or digit",
        _ => null,
    };

    /// <summary><see cref="RaeJobException"/> naming the problem when <paramref name="name"/> is not valid.</summary>
    public static string Validate(string? name) => Problem(name) is { } problem ? throw new RaeJobException(problem) : name!;

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]*$")]
    private static partial Regex Pattern();
}
