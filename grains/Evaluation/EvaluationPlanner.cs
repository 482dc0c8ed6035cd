using System.Text;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Data;

namespace RAE.Grains.Evaluation;

/// <summary>An evaluation job's inputs as resolved at start, its crop size, its units and its cached reference statistics.</summary>
public sealed record EvaluationPlan(
    ResolvedEvaluationInput Samples, ResolvedEvaluationInput Reference, int ImageSize, IReadOnlyList<EvaluationUnitPlan> Units, string? StatisticsLocation);

/// <summary>
/// Checks an evaluation spec and resolves it before anything is persisted: every refusal is a <see cref="RaeJobException"/>
/// naming the input and the problem (unknown job or dataset, unfinished sampling job, image sets of different sizes,
/// missing Inception weights).
/// </summary>
public static class EvaluationPlanner
{
    public const string InceptionFileName = "pt_inception-2015-12-05-6726825d.pth";

    public static async Task<EvaluationPlan> PlanAsync(string jobId, EvaluationJobSpec spec, IGrainFactory grains, IBlobStore blobs,
        Func<Task<IReadOnlyList<IEvaluationWorkerGrain>>> workers)
    {
        var metric = EvaluationMetrics.NameOf(spec.Metric);
        var problems = new List<string>();
        if (spec.UnitSize < 1) problems.Add($"UnitSize must be positive, got {spec.UnitSize}");
        if (spec.BatchSize < 1) problems.Add($"BatchSize must be positive, got {spec.BatchSize}");
        if (spec.MaxWorkers < 0) problems.Add($"MaxWorkers must be 0 (every device) or positive, got {spec.MaxWorkers}");
        if (spec.ImageSize < 0) problems.Add($"ImageSize must be 0 (the images' own size) or positive, got {spec.ImageSize}");
        if (spec.UnitDelay < TimeSpan.Zero) problems.Add($"UnitDelay must be zero or positive, got {spec.UnitDelay}");
        if (problems.Count > 0) throw new RaeJobException($"Invalid evaluation job '{jobId}': {string.Join("; ", problems)}.");
        if (EvaluationMetrics.NeedsInception(spec.Metric))
        {
            if (string.IsNullOrWhiteSpace(spec.InceptionWeightsPath))
                throw new RaeJobException($"Metric {metric} needs the FID Inception weights ({InceptionFileName}, as torch-fidelity and pytorch-fid release them) and none were given: pass --inception-weights FILE (a path every silo can read) or set RAE_INCEPTION_WEIGHTS; without them use --metric fd_resnet18 (not comparable with FID).");
            if (!File.Exists(spec.InceptionWeightsPath))
                throw new RaeJobException($"Metric {metric} needs the FID Inception weights ({InceptionFileName}): '{spec.InceptionWeightsPath}' does not exist on silo of the job; give a path every silo can read.");
        }

        var samples = await ResolveAsync(jobId, spec.Samples, grains, blobs, workers, "samples");
        var reference = await ResolveAsync(jobId, spec.Reference, grains, blobs, workers, "reference");
        if (samples.HasStatistics)
            throw new RaeJobException($"Evaluation job '{jobId}': the samples ({samples.Input}) hold FID statistics (mu, sigma), not images; only the reference may be statistics.");
        var imageSize = spec.ImageSize > 0 ? spec.ImageSize
            : samples.Height > 0 ? samples.Height
            : reference.Height > 0 ? reference.Height
            : throw new RaeJobException($"Evaluation job '{jobId}': both inputs are datasets, so the crop size is unknown; give ImageSize (--image-size).");

        var paired = EvaluationMetrics.IsPaired(spec.Metric);
        if (paired)
        {
            if (reference.HasStatistics)
                throw new RaeJobException($"Evaluation job '{jobId}': {metric} compares reconstructions with their originals image by image, but the reference ({reference.Input}) holds only statistics (mu, sigma).");
            var (sh, sw) = SizeOf(samples, imageSize);
            var (rh, rw) = SizeOf(reference, imageSize);
            if (samples.Images != reference.Images || sh != rh || sw != rw)
                throw new RaeJobException($"Evaluation job '{jobId}': {metric} compares two image sets of equal size, but the samples ({samples.Input}) are {samples.Images} images of {sh}x{sw} and the reference ({reference.Input}) {reference.Images} images of {rh}x{rw}.");
        }

        string? statisticsLocation = null;
        var referenceUnits = !reference.HasStatistics;
        if (!paired && reference.Input.Kind == EvaluationInputKind.Dataset)
        {
            statisticsLocation = EvaluationFiles.DatasetStatisticsLocation(reference.Location, spec.Metric, imageSize);
            if (await blobs.ExistsAsync(statisticsLocation)) referenceUnits = false;
        }

        var units = new List<EvaluationUnitPlan>();
        void Add(EvaluationSide side, int images)
        {
            for (var first = 0; first < images; first += spec.UnitSize) units.Add(new EvaluationUnitPlan(side, first, Math.Min(spec.UnitSize, images - first)));
        }
        if (spec.Metric is EvaluationMetric.Psnr or EvaluationMetric.Ssim) Add(EvaluationSide.Pair, samples.Images);
        else
        {
            Add(EvaluationSide.Samples, samples.Images);
            if (referenceUnits) Add(EvaluationSide.Reference, reference.Images);
        }
        if (spec.Metric is not (EvaluationMetric.Psnr or EvaluationMetric.Ssim) && samples.Images < 2)
            throw new RaeJobException($"Evaluation job '{jobId}': {metric} needs at least 2 sample images for a covariance, the samples ({samples.Input}) hold {samples.Images}.");
        return new EvaluationPlan(samples, reference, imageSize, units, statisticsLocation);
    }

    private static (int Height, int Width) SizeOf(ResolvedEvaluationInput input, int imageSize) =>
        input.Input.Kind == EvaluationInputKind.Dataset ? (imageSize, imageSize) : (input.Height, input.Width);

    private static async Task<ResolvedEvaluationInput> ResolveAsync(string jobId, EvaluationInput input, IGrainFactory grains, IBlobStore blobs,
        Func<Task<IReadOnlyList<IEvaluationWorkerGrain>>> workers, string role)
    {
        if (input is null || string.IsNullOrWhiteSpace(input.Name))
            throw new RaeJobException($"Evaluation job '{jobId}': no {role} were given.");
        switch (input.Kind)
        {
            case EvaluationInputKind.Dataset:
            {
                var problem = DatasetNames.Problem(input.Name);
                if (problem is not null) throw new RaeJobException($"Evaluation job '{jobId}': {role}: {problem}.");
                BlobContent manifestBlob;
                try
                {
                    manifestBlob = await blobs.GetAsync($"datasets/{input.Name}/{DatasetManifest.FileName}");
                }
                catch (BlobNotFoundException)
                {
                    throw new RaeJobException($"Evaluation job '{jobId}': the {role} name dataset '{input.Name}', which is unknown; 'rae datasets list' shows the datasets.");
                }
                var manifest = DatasetManifest.FromJson(Encoding.UTF8.GetString(manifestBlob.Data), $"manifest of dataset '{input.Name}'");
                return new ResolvedEvaluationInput(input, input.Name, manifest.ImageCount, 0, 0, false, null);
            }
            case EvaluationInputKind.SamplingJob:
            {
                SamplingJobStatus status;
                try
                {
                    status = await grains.GetGrain<ISamplingJobGrain>(input.Name).GetStatus();
                }
                catch (RaeJobException)
                {
                    throw new RaeJobException($"Evaluation job '{jobId}': the {role} name sampling job '{input.Name}', which is unknown; 'rae jobs list' shows the jobs.");
                }
                if (status.State != JobState.Completed)
                    throw new RaeJobException($"Evaluation job '{jobId}': sampling job '{input.Name}' ({role}) is {status.State.ToString().ToLowerInvariant()}, not completed; evaluate it once it has written its .npz.");
                if (status.OutputLocation is not { } npz || !npz.EndsWith(".npz", StringComparison.Ordinal))
                    throw new RaeJobException($"Evaluation job '{jobId}': sampling job '{input.Name}' ({role}) kept latents (its config has no Stage 1 decoder), so it has no images to evaluate.");
                return await ResolveNpzAsync(input, npz, workers);
            }
            default:
            {
                if (!await blobs.ExistsAsync(input.Name))
                    throw new RaeJobException($"Evaluation job '{jobId}': the {role} file {input} is not in the blob store (was its upload finished?).");
                return await ResolveNpzAsync(input, input.Name, workers);
            }
        }
    }

    private static async Task<ResolvedEvaluationInput> ResolveNpzAsync(EvaluationInput input, string location, Func<Task<IReadOnlyList<IEvaluationWorkerGrain>>> workers)
    {
        try
        {
            return await (await workers())[0].ResolveNpz(input, location);
        }
        catch (Exception error) when (error is InvalidDataException or RAE.Models.IO.CheckpointFormatException)
        {
            throw new RaeJobException($"{input}: {error.Message}", error);
        }
    }
}
