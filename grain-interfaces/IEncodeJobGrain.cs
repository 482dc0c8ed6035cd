using RAE.Configuration;

namespace RAE.GrainInterfaces;

/// <summary>How an encode job computes the latent statistics (<c>stat.pt</c>).</summary>
public enum LatentStatisticsMethod
{
    /// <summary>Exact per-position mean and variance: float64 moments per shard, merged in shard order.</summary>
    Exact,

    /// <summary>The reference's running rule (spec §9.1, momentum 0.1), batch after batch in shard order.</summary>
    Momentum,
}

/// <summary>
/// An encode job: the image dataset <see cref="Dataset"/> encoded by the frozen encoder of <see cref="Config"/>'s
/// <c>stage_1</c> section into the latent dataset <see cref="LatentName"/> (blob folder <c>latents/NAME/</c>).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record EncodeJobSpec
{
    [Id(0)] public string Dataset { get; init; } = "";
    [Id(1)] public string LatentName { get; init; } = "";
    /// <summary>The configuration whose <c>stage_1</c> section names the encoder and its input size.</summary>
    [Id(2)] public JobConfiguration? Config { get; init; }
    /// <summary>Also store the latents of the mirrored images (<c>latents_flipped</c>).</summary>
    [Id(3)] public bool Flip { get; init; }
    [Id(4)] public LatentStatisticsMethod Statistics { get; init; } = LatentStatisticsMethod.Exact;
    /// <summary>How the latents are stored (computed in float32 either way).</summary>
    [Id(5)] public ComputePrecision Precision { get; init; } = ComputePrecision.Float32;
    /// <summary>Images per encoder call (and per batch of the momentum rule).</summary>
    [Id(6)] public int BatchSize { get; init; } = 32;
    /// <summary>At most this many shard encoders (0: every device of every silo).</summary>
    [Id(7)] public int MaxWorkers { get; init; }
    /// <summary>A pause after each shard, for tests and demos.</summary>
    [Id(8)] public TimeSpan ShardDelay { get; init; }
}

/// <summary>One committed latent shard: where it is, what it holds and the moments file of its latents.</summary>
[GenerateSerializer, Immutable]
public sealed record EncodedShardResult(
    [property: Id(0)] int Index,
    [property: Id(1)] string SourceShard,
    [property: Id(2)] string LatentFile,
    [property: Id(3)] int Count,
    [property: Id(4)] long Bytes,
    [property: Id(5)] string Sha256,
    [property: Id(6)] IReadOnlyList<int> CountsPerClass,
    [property: Id(7)] IReadOnlyList<DatasetSkippedFile> Skipped,
    [property: Id(8)] IReadOnlyList<long> LatentShape,
    [property: Id(9)] double Seconds);

[GenerateSerializer, Immutable]
public sealed record EncodeJobStatus
{
    [Id(0)] public string JobId { get; init; } = "";
    [Id(1)] public JobState State { get; init; }
    [Id(2)] public EncodeJobSpec Spec { get; init; } = new();
    [Id(3)] public int ShardsTotal { get; init; }
    [Id(4)] public int ShardsDone { get; init; }
    [Id(5)] public long ImagesTotal { get; init; }
    [Id(6)] public long ImagesDone { get; init; }
    /// <summary>Images decoded and encoded per second over the shards finished since the job (re)started.</summary>
    [Id(7)] public double ImagesPerSecond { get; init; }
    /// <summary>Images of committed shards that did not decode, by name with the reason.</summary>
    [Id(8)] public IReadOnlyList<DatasetSkippedFile> Skipped { get; init; } = [];
    [Id(9)] public string? FailureReason { get; init; }
    /// <summary>The latent dataset's manifest once written.</summary>
    [Id(10)] public string? OutputLocation { get; init; }
    [Id(11)] public DateTimeOffset CreatedAt { get; init; }
    [Id(12)] public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>How many times a new activation (after a restart or on another silo) continued the job.</summary>
    [Id(13)] public int Resumptions { get; init; }
}

/// <summary>
/// One per encode job (key: job id): splits the dataset's shards over the shard encoders of every silo, records each
/// committed latent shard in persistent state (never redone), then writes the statistics and, last, the manifest.
/// </summary>
public interface IEncodeJobGrain : IContinuableJobGrain
{
    /// <summary>Checks the dataset, the latent name and the configuration, persists the job and starts it.</summary>
    Task Start(EncodeJobSpec spec);

    Task<EncodeJobStatus> GetStatus();

    /// <summary>Stops handing out shards, waits for those in flight (they are kept) and marks the job cancelled.</summary>
    Task Cancel();

    /// <summary>Continues an unfinished or cancelled job with the shards not yet committed.</summary>
    Task Resume();
}

/// <summary>One image shard to encode into its latent shard.</summary>
[GenerateSerializer, Immutable]
public sealed record EncodeShardRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] int Index,
    [property: Id(2)] DatasetShard Shard,
    [property: Id(3)] int ClassCount,
    [property: Id(4)] EncodeJobSpec Spec);

/// <summary>The committed shards of a job, in shard order, whose statistics are to be written.</summary>
[GenerateSerializer, Immutable]
public sealed record LatentStatisticsRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] EncodeJobSpec Spec,
    [property: Id(2)] IReadOnlyList<EncodedShardResult> Shards);

/// <summary>
/// The shard encoder of one device of one silo (key: <see cref="SiloBoundKey.Encoder"/>), placed on that silo. The frozen
/// encoder lives on a dedicated worker thread; grain turns only move blobs.
/// </summary>
public interface IShardEncoderGrain : IUnitWorkerGrain
{
    /// <summary>Reads and verifies the image shard, encodes it, writes its moments and then its latent shard, checks the
    /// stored latent shard against what was encoded, and returns it.</summary>
    [ResponseTimeout("01:00:00")]
    Task<EncodedShardResult> EncodeShard(EncodeShardRequest request);

    /// <summary>Writes <c>stat.pt</c> and <c>stat.safetensors</c> from the shards' moments (exact) or latents (momentum);
    /// returns how many latents they cover.</summary>
    [ResponseTimeout("01:00:00")]
    Task<long> WriteStatistics(LatentStatisticsRequest request);

    /// <summary>Drops the loaded encoder.</summary>
    Task Release();
}

/// <summary>A committed latent dataset as its manifest describes it.</summary>
[GenerateSerializer, Immutable]
public sealed record LatentDatasetSummary(
    [property: Id(0)] string Name,
    [property: Id(1)] string Dataset,
    [property: Id(2)] string Encoder,
    [property: Id(3)] int ImageSize,
    [property: Id(4)] IReadOnlyList<long> LatentShape,
    [property: Id(5)] string DType,
    [property: Id(6)] bool Flips,
    [property: Id(7)] IReadOnlyList<string> Classes,
    [property: Id(8)] IReadOnlyList<int> CountsPerClass,
    [property: Id(9)] int Shards,
    [property: Id(10)] long Bytes,
    [property: Id(11)] string? StatisticsMethod)
{
    public long Count => CountsPerClass.Sum(count => (long)count);
}

/// <summary>The latent datasets of the cluster's blob store (key: 0); a latent dataset exists exactly when its manifest does.</summary>
public interface ILatentCatalogGrain : IGrainWithIntegerKey
{
    Task<IReadOnlyList<LatentDatasetSummary>> List();

    /// <summary>The committed latent dataset; <see cref="RaeJobException"/> naming it when there is none.</summary>
    Task<LatentDatasetSummary> Describe(string name);

    /// <summary>Removes the latent dataset's manifest first, then every other file under its folder; false when nothing was there.</summary>
    Task<bool> Remove(string name);
}
