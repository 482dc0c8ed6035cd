using System.CommandLine;
using System.Globalization;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;

namespace RAE.Client.Commands;

/// <summary>
/// `rae eval SAMPLES --ref REF [--metric fd_resnet18|fid|rfid|psnr|ssim|rfd_resnet18]`: an evaluation job on the cluster. SAMPLES and
/// REF are local <c>.npz</c> files (uploaded through the cluster, checksummed), sampling-job ids or dataset names; a
/// REF <c>.npz</c> with <c>mu</c>/<c>sigma</c> (an ADM reference batch) is used as given. Follows the job and prints the
/// score unless --no-watch.
/// </summary>
public sealed class EvalCommand : ClusterCommand
{
    public const string InceptionEnvironmentVariable = "RAE_INCEPTION_WEIGHTS";

    private readonly Argument<string> _samples = new("SAMPLES") { Description = "Samples (or reconstructions): a local .npz, a sampling job id or a dataset name" };
    private readonly Option<string> _reference = new("--ref") { HelpName = "REF", Description = "Reference: a local .npz (images, or mu/sigma), a sampling job id or a dataset name", Required = true };
    private readonly Option<string> _metric = CliOptions.Choice("--metric", "What to compute (fd_resnet18 is the offline default and is not FID)", "fd_resnet18", "fd_resnet18", "fid", "rfid", "psnr", "ssim", "rfd_resnet18");
    private readonly Option<string> _inception = new("--inception-weights") { HelpName = "FILE", Description = $"pt_inception-2015-12-05-6726825d.pth, a path every silo can read (fid, rfid) [default: ${InceptionEnvironmentVariable}]" };
    private readonly Option<int> _unitSize = new("--unit-size") { HelpName = "N", Description = "Images per work unit", DefaultValueFactory = _ => 256 };
    private readonly Option<int> _batchSize = new("--batch-size") { HelpName = "N", Description = "Images per forward pass", DefaultValueFactory = _ => 64 };
    private readonly Option<int> _imageSize = new("--image-size") { HelpName = "PX", Description = "Center-crop size of dataset images [default: the other input's size]" };
    private readonly Option<string> _jobId = new("--job-id") { HelpName = "ID", Description = "The evaluation job's id [default: a new one]" };

    public WatchOptions Watching { get; } = new(watchByDefault: true);

    public override string Name => "eval";

    public override string Summary => "Score samples against a reference (fd_resnet18, fid, rfid, psnr, ssim) as a cluster job";

    protected override IEnumerable<Symbol> OwnSymbols =>
        [_samples, _reference, _metric, _inception, _unitSize, _batchSize, _imageSize, _jobId, .. Watching.All];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var samples = parsed.GetRequiredValue(_samples);
        var reference = parsed.GetRequiredValue(_reference);
        var metric = EvaluationMetrics.Parse(parsed.GetRequiredValue(_metric));
        var inception = parsed.GetValue(_inception) ?? Environment.GetEnvironmentVariable(InceptionEnvironmentVariable);
        var unitSize = parsed.GetValue(_unitSize);
        var batchSize = parsed.GetValue(_batchSize);
        var imageSize = parsed.GetValue(_imageSize);
        var jobId = parsed.GetValue(_jobId) ?? $"eval-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}";
        var watch = Watching.Read(parsed);
        if (unitSize < 1) throw new UsageException($"--unit-size must be at least 1, got {unitSize}");
        if (batchSize < 1) throw new UsageException($"--batch-size must be at least 1, got {batchSize}");
        if (imageSize < 0) throw new UsageException($"--image-size must be positive, got {imageSize}");
        if (EvaluationMetrics.NeedsInception(metric) && string.IsNullOrWhiteSpace(inception))
            throw new UsageException($"--metric {EvaluationMetrics.NameOf(metric)} needs the FID Inception weights (pt_inception-2015-12-05-6726825d.pth): pass --inception-weights FILE or set {InceptionEnvironmentVariable}; without them use --metric fd_resnet18 (not comparable with FID)");
        if (inception is not null) inception = Path.GetFullPath(inception);
        LocalFileOrNull(samples);
        LocalFileOrNull(reference);

        return async (client, ctx) =>
        {
            var spec = new EvaluationJobSpec
            {
                Metric = metric,
                Samples = await ResolveAsync(client, samples, "SAMPLES", ctx.CancellationToken),
                Reference = await ResolveAsync(client, reference, "--ref", ctx.CancellationToken),
                UnitSize = unitSize,
                BatchSize = batchSize,
                ImageSize = imageSize,
                InceptionWeightsPath = EvaluationMetrics.NeedsInception(metric) ? inception : null,
            };
            await client.Grains.GetGrain<IEvaluationJobGrain>(jobId).Start(spec);
            if (ctx.Json) ctx.WriteJson(new { jobId, kind = "submitted", metric = EvaluationMetrics.NameOf(metric), samples = spec.Samples.ToString(), reference = spec.Reference.ToString() });
            else ctx.Output.WriteLine($"started {jobId}: {EvaluationMetrics.NameOf(metric)} of {spec.Samples} against {spec.Reference}");
            if (!watch) return Ok;
            return ExitCodeOf(await new JobWatcher(client, ctx).WatchEvaluationAsync(jobId));
        };
    }

    /// <summary>A path that looks like a file (.npz/.npy) must exist: a usage error naming it otherwise; null for names.</summary>
    private static string? LocalFileOrNull(string value)
    {
        if (File.Exists(value)) return Path.GetFullPath(value);
        if (value.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) || value.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || value.Contains('/'))
            throw new UsageException($"'{value}' does not exist (a local .npz file was expected)");
        return null;
    }

    /// <summary>A local file is uploaded; otherwise a sampling job of that id, else a dataset of that name.</summary>
    private static async Task<EvaluationInput> ResolveAsync(RaeClient client, string value, string role, CancellationToken cancellationToken)
    {
        if (LocalFileOrNull(value) is { } file)
        {
            var location = await EvaluationTransfers.UploadAsync(client.Grains, file, cancellationToken);
            return new EvaluationInput(EvaluationInputKind.NpzBlob, location, $"file '{file}'");
        }
        if (await client.TryGetSamplingStatusAsync(value) is not null)
            return new EvaluationInput(EvaluationInputKind.SamplingJob, value, $"sampling job '{value}'");
        if (DatasetNames.Problem(value) is null)
        {
            try
            {
                await client.Grains.GetGrain<IDatasetGrain>(value).Describe();
                return new EvaluationInput(EvaluationInputKind.Dataset, value, $"dataset '{value}'");
            }
            catch (RaeJobException)
            {
                // Not a dataset either: the error below names everything that was tried.
            }
        }
        throw new RaeJobException($"{role} '{value}' is neither a local file, a sampling job nor a dataset of this cluster ('rae jobs list', 'rae datasets list').");
    }

    /// <summary>The score line: the metric's own name (fd_resnet18 is never called FID) and what was compared.</summary>
    public static string Describe(EvaluationJobStatus status)
    {
        var result = status.Result!;
        var line = string.Create(CultureInfo.InvariantCulture, $"{result.Metric} = {result.Value:G10}  ({result.SampleImages} sample images vs {(result.ReferenceImages > 0 ? result.ReferenceImages + " reference images" : "reference statistics")})");
        if (result.ReferenceStatistics is { } stats) line += $"; reference statistics {(result.ReferenceStatisticsReused ? "read from" : "computed and cached at")} {stats}";
        return line;
    }
}
