namespace RAE.GrainInterfaces;

/// <summary>What an evaluation job measures. <see cref="FdResNet18"/> is the offline default and is never FID.</summary>
public enum EvaluationMetric
{
    /// <summary>Fréchet distance on the frozen ResNet18's pooled features (no Inception weights needed); not comparable with FID.</summary>
    FdResNet18,
    /// <summary>RAE's gFID: Inception features of the samples against the reference's statistics (needs the user's Inception weights).</summary>
    Fid,
    /// <summary>rFID of reconstructions against originals, paired by index (torch-fidelity 0.3.0 numerics).</summary>
    Rfid,
    Psnr,
    Ssim,
    /// <summary>
    /// The offline rFID: Fréchet distance of the frozen ResNet18's pooled features of reconstructions against their
    /// originals (rFID's numerics); not comparable with rFID.
    /// </summary>
    RfdResNet18,
}

public static class EvaluationMetrics
{
    /// <summary>The names the CLI and the results use: fd_resnet18, fid, rfid, psnr, ssim, rfd_resnet18.</summary>
    public static string NameOf(EvaluationMetric metric) => metric switch
    {
        EvaluationMetric.FdResNet18 => "fd_resnet18",
        EvaluationMetric.Fid => "fid",
        EvaluationMetric.Rfid => "rfid",
        EvaluationMetric.Psnr => "psnr",
        EvaluationMetric.Ssim => "ssim",
        EvaluationMetric.RfdResNet18 => "rfd_resnet18",
        _ => throw new ArgumentOutOfRangeException(nameof(metric), metric, "unknown metric"),
    };

    /// <summary>The metric of a name; <see cref="RaeJobException"/> listing the known names otherwise.</summary>
    public static EvaluationMetric Parse(string name)
    {
        foreach (var metric in Enum.GetValues<EvaluationMetric>())
            if (NameOf(metric) == name) return metric;
        throw new RaeJobException($"metric '{name}' is unknown; use one of {string.Join(", ", Enum.GetValues<EvaluationMetric>().Select(NameOf))}");
    }

    /// <summary>Whether the metric compares two image sets of equal size image by image (reconstructions vs originals).</summary>
    public static bool IsPaired(EvaluationMetric metric) => metric is EvaluationMetric.Psnr or EvaluationMetric.Ssim or EvaluationMetric.Rfid or EvaluationMetric.RfdResNet18;

    /// <summary>Whether the metric runs the FID InceptionV3 (and so needs the user's weights file).</summary>
    public static bool NeedsInception(EvaluationMetric metric) => metric is EvaluationMetric.Fid or EvaluationMetric.Rfid;
}

public enum EvaluationInputKind
{
    /// <summary>An <c>.npz</c> in the cluster's blob store (a local file the client uploaded, see <see cref="IEvaluationUploadGrain"/>).</summary>
    NpzBlob,
    /// <summary>A completed sampling job: its FID <c>.npz</c>.</summary>
    SamplingJob,
    /// <summary>An image dataset of the blob store, ADM-center-cropped to the evaluated size, in manifest order.</summary>
    Dataset,
}

/// <summary>One side of an evaluation as the client names it.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationInput([property: Id(0)] EvaluationInputKind Kind, [property: Id(1)] string Name, [property: Id(2)] string? Description = null)
{
    public override string ToString() => Description ?? $"{Kind} '{Name}'";
}

/// <summary>An evaluation job: <see cref="Samples"/> scored against <see cref="Reference"/> with <see cref="Metric"/>.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationJobSpec
{
    [Id(0)] public EvaluationMetric Metric { get; init; } = EvaluationMetric.FdResNet18;
    [Id(1)] public EvaluationInput Samples { get; init; } = new(EvaluationInputKind.NpzBlob, "");
    [Id(2)] public EvaluationInput Reference { get; init; } = new(EvaluationInputKind.NpzBlob, "");
    /// <summary>Images per work unit.</summary>
    [Id(3)] public int UnitSize { get; init; } = 256;
    /// <summary>Images per forward pass (and the PSNR/SSIM batch whose max decides the ÷255, as the reference's 128).</summary>
    [Id(4)] public int BatchSize { get; init; } = 64;
    /// <summary>The <c>pt_inception-2015-12-05</c> weights, a path the silos can read; required by fid and rfid.</summary>
    [Id(5)] public string? InceptionWeightsPath { get; init; }
    /// <summary>Side of the square a dataset's images are center-cropped to; 0: the other input's image size.</summary>
    [Id(6)] public int ImageSize { get; init; }
    /// <summary>At most this many workers (0: every device of every silo).</summary>
    [Id(7)] public int MaxWorkers { get; init; }
    /// <summary>A pause after each unit, for tests.</summary>
    [Id(8)] public TimeSpan UnitDelay { get; init; }
}

/// <summary>An input as the job resolved it at start: where its images are, how many and how large.</summary>
[GenerateSerializer, Immutable]
public sealed record ResolvedEvaluationInput(
    [property: Id(0)] EvaluationInput Input,
    /// <summary>The <c>.npz</c> blob (npz and sampling-job inputs) or the dataset name.</summary>
    [property: Id(1)] string Location,
    [property: Id(2)] int Images,
    [property: Id(3)] int Height,
    [property: Id(4)] int Width,
    /// <summary>The npz holds <c>mu</c>/<c>sigma</c> (an ADM reference batch): its statistics are used as they are.</summary>
    [property: Id(5)] bool HasStatistics,
    /// <summary>Blob checksum of the npz, so a worker's cached copy is known to be the same file.</summary>
    [property: Id(6)] string? Sha256);

public enum EvaluationSide
{
    Samples,
    Reference,
    /// <summary>A PSNR/SSIM unit: both inputs' images of the same range.</summary>
    Pair,
}

/// <summary>One unit of an evaluation job: images [<see cref="First"/>, First + Count) of one side (or both, paired).</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationUnitRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] int Unit,
    [property: Id(2)] EvaluationSide Side,
    [property: Id(3)] int First,
    [property: Id(4)] int Count,
    [property: Id(5)] EvaluationJobSpec Spec,
    [property: Id(6)] ResolvedEvaluationInput Samples,
    [property: Id(7)] ResolvedEvaluationInput Reference,
    [property: Id(8)] int ImageSize,
    [property: Id(9)] string OutputLocation);

/// <summary>Everything the final merge needs: the finished units in unit order and where the reference statistics come from.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationMergeRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] EvaluationJobSpec Spec,
    [property: Id(2)] ResolvedEvaluationInput Samples,
    [property: Id(3)] ResolvedEvaluationInput Reference,
    [property: Id(4)] IReadOnlyList<string> SampleUnits,
    [property: Id(5)] IReadOnlyList<string> ReferenceUnits,
    [property: Id(6)] IReadOnlyList<string> PairUnits,
    /// <summary>Cached reference statistics to read (or, with no reference units, to write once computed); null when not cached.</summary>
    [property: Id(7)] string? ReferenceStatisticsLocation,
    [property: Id(8)] int ImageSize);

/// <summary>The score of a finished evaluation.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationResult(
    [property: Id(0)] string Metric,
    [property: Id(1)] double Value,
    [property: Id(2)] int SampleImages,
    [property: Id(3)] int ReferenceImages,
    /// <summary>Where the reference statistics were read from or cached to (dataset and ADM-batch references).</summary>
    [property: Id(4)] string? ReferenceStatistics,
    /// <summary>True when cached or given statistics were read instead of computing the reference's features.</summary>
    [property: Id(5)] bool ReferenceStatisticsReused);

[GenerateSerializer, Immutable]
public sealed record EvaluationJobStatus
{
    [Id(0)] public string JobId { get; init; } = "";
    [Id(1)] public JobState State { get; init; }
    [Id(2)] public EvaluationJobSpec Spec { get; init; } = new();
    [Id(3)] public int UnitsTotal { get; init; }
    [Id(4)] public int UnitsDone { get; init; }
    [Id(5)] public EvaluationResult? Result { get; init; }
    [Id(6)] public string? FailureReason { get; init; }
    [Id(7)] public ResolvedEvaluationInput? Samples { get; init; }
    [Id(8)] public ResolvedEvaluationInput? Reference { get; init; }
    [Id(9)] public DateTimeOffset CreatedAt { get; init; }
    [Id(10)] public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>How many activations found the job unfinished and continued it.</summary>
    [Id(11)] public int Resumptions { get; init; }
    /// <summary>The silo of the activation that answered (parsable address).</summary>
    [Id(12)] public string Silo { get; init; } = "";
    /// <summary>The units recorded as finished, in unit order.</summary>
    [Id(13)] public IReadOnlyList<int> FinishedUnits { get; init; } = [];
}

/// <summary>
/// One evaluation job (key: job id): resolves its inputs, splits feature extraction (or PSNR/SSIM) into units handed to
/// the evaluation workers of every silo, records every finished unit in persistent state (a silo kill never redoes
/// one), then merges the units in unit order, so the score does not depend on how many workers ran it.
/// </summary>
public interface IEvaluationJobGrain : IContinuableJobGrain
{
    Task Start(EvaluationJobSpec spec);

    Task<EvaluationJobStatus> GetStatus();

    Task Cancel();

    Task Resume();
}

/// <summary>The evaluation worker of one device of one silo (key: <see cref="SiloBoundKey"/> with suffix <c>evaluator:DEVICE</c>).</summary>
public interface IEvaluationWorkerGrain : IUnitWorkerGrain
{
    /// <summary>What the <c>.npz</c> blob at <paramref name="location"/> holds: images (count and size) or FID statistics.</summary>
    [ResponseTimeout("00:30:00")]
    Task<ResolvedEvaluationInput> ResolveNpz(EvaluationInput input, string location);

    /// <summary>Computes one unit (features, or per-image PSNR/SSIM) on the dedicated worker thread and writes it to <see cref="EvaluationUnitRequest.OutputLocation"/>.</summary>
    [ResponseTimeout("01:00:00")]
    Task<string> RunUnit(EvaluationUnitRequest request);

    /// <summary>Merges the finished units in order into the score (statistics and distance on the worker thread).</summary>
    [ResponseTimeout("01:00:00")]
    Task<EvaluationResult> Merge(EvaluationMergeRequest request);
}

/// <summary>One piece of an uploaded file: it must start where the previous one ended and hash to <see cref="Sha256"/>.</summary>
[GenerateSerializer, Immutable]
public sealed record UploadChunk([property: Id(0)] long Offset, [property: Id(1)] byte[] Data, [property: Id(2)] string Sha256);

/// <summary>
/// A file on its way from the client into the blob store (key: an upload id): chunks, each checked against its SHA-256,
/// then <see cref="Finish"/> checks the whole file's SHA-256 and stores it under <c>uploads/ID/NAME</c>.
/// </summary>
public interface IEvaluationUploadGrain : IGrainWithStringKey
{
    public const int MaxChunkBytes = 8 * 1024 * 1024;

    Task WriteChunk(UploadChunk chunk);

    /// <summary>Stores the file; returns its blob path. <see cref="RaeJobException"/> when size or checksum differ.</summary>
    Task<string> Finish(string fileName, long size, string sha256);
}

/// <summary>A file of a sampling job's output, as <see cref="ISamplingExportGrain"/> lists it.</summary>
[GenerateSerializer, Immutable]
public sealed record ExportFile([property: Id(0)] string Name, [property: Id(1)] long Size, [property: Id(2)] string Sha256);

/// <summary>
/// The outputs of one sampling job (key: job id) for clients without storage credentials: its <c>samples.npz</c> and
/// PNGs, listed with size and SHA-256, then streamed in chunks that the client checks against the listing.
/// </summary>
public interface ISamplingExportGrain : IGrainWithStringKey
{
    public const int MaxChunkBytes = 16 * 1024 * 1024;

    Task<IReadOnlyList<ExportFile>> ListFiles();

    /// <summary>The file, front to back, in chunks of at most <paramref name="chunkBytes"/>; its checksum is verified at the end.</summary>
    IAsyncEnumerable<byte[]> ReadFile(string name, int chunkBytes, CancellationToken cancellationToken = default);
}
