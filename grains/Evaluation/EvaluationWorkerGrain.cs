using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Placement;
using RAE.Grains.Storage;
using RAE.Grains.Workers;
using RAE.Models.Data;
using RAE.Models.IO;
using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Grains.Evaluation;

/// <summary>Evaluation metrics; <c>rae.evaluation.unit_executions</c> counts every unit a worker computed (tags: job, unit, side).</summary>
public static class EvaluationTelemetry
{
    public const string MeterName = "RAE.Evaluation";
    private static readonly Meter Meter = new(MeterName);
    public static readonly Counter<long> UnitExecutions = Meter.CreateCounter<long>("rae.evaluation.unit_executions", unit: "{unit}");
}

/// <summary>
/// Evaluates units for one device of one silo. Every tensor operation (decoding, feature extraction, PSNR/SSIM, the
/// statistics and the Fréchet distance) runs on the dedicated worker thread, which also keeps the loaded feature
/// extractors; grain turns only move blobs. Input <c>.npz</c> files are fetched once per activation into scratch files.
/// </summary>
[SiloBoundPlacement]
public sealed partial class EvaluationWorkerGrain(IBlobStore blobs, IOptions<RankDeviceOptions> devices,
    ILogger<EvaluationWorkerGrain> logger) : DeviceWorkerGrain(Role, devices), IEvaluationWorkerGrain
{
    private const string Role = "evaluator";
    public const string KeyPrefix = Role + ":";

    private readonly Dictionary<string, string> _npzFiles = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DatasetManifest> _manifests = new(StringComparer.Ordinal);
    /// <summary>The shards read last (units rarely line up with shards, so neighbouring units share one).</summary>
    private readonly Dictionary<string, byte[]> _recentShards = new(StringComparer.Ordinal);
    private ResNet18Features? _resnet;
    private (string Path, FidInceptionV3 Model)? _inception;

    public static string KeyOf(SiloAddress silo, string device) => SiloBoundKey.Create(silo, KeyPrefix + device);

    /// <summary>Reads what an <c>.npz</c> blob holds (images and their size, or FID statistics).</summary>
    public async Task<ResolvedEvaluationInput> ResolveNpz(EvaluationInput input, string location)
    {
        var (file, sha256) = await NpzFileAsync(location, input.ToString());
        var (images, height, width, statistics) = await Thread.InvokeAsync(() => EvaluationFiles.Describe(file, input.ToString()));
        return new ResolvedEvaluationInput(input, location, images, height, width, statistics, sha256);
    }

    public Task<string> RunUnit(EvaluationUnitRequest request) =>
        RunCancellableUnitAsync(request.JobId, cancellationToken => RunUnitAsync(request, cancellationToken));

    private async Task<string> RunUnitAsync(EvaluationUnitRequest request, CancellationToken cancellationToken)
    {
        var spec = request.Spec;
        byte[] result;
        if (request.Side == EvaluationSide.Pair)
        {
            using var reference = await ImagesAsync(request.Reference, request);
            using var samples = await ImagesAsync(request.Samples, request);
            result = await Thread.InvokeAsync(() =>
            {
                var (psnrPerImage, ssimPerImage) = (new List<float>(), new List<float>());
                ForEachBatch(reference.shape[0], spec.BatchSize, cancellationToken, (start, length) =>
                {
                    using var referencePart = reference.narrow(0, start, length);
                    using var samplesPart = samples.narrow(0, start, length);
                    var scores = ReconstructionMetrics.Evaluate(referencePart, samplesPart, spec.BatchSize);
                    psnrPerImage.AddRange(scores.PsnrPerImage);
                    ssimPerImage.AddRange(scores.SsimPerImage);
                });
                using var psnr = tensor(psnrPerImage.ToArray());
                using var ssim = tensor(ssimPerImage.ToArray());
                return EvaluationFiles.Serialize([new(EvaluationFiles.PsnrKey, psnr), new(EvaluationFiles.SsimKey, ssim)], request);
            }, cancellationToken);
        }
        else
        {
            using var images = await ImagesAsync(request.Side == EvaluationSide.Samples ? request.Samples : request.Reference, request);
            result = await Thread.InvokeAsync(() =>
            {
                // No dispose scope here: an extractor loaded on first use must outlive the unit.
                var batches = new List<Tensor>();
                try
                {
                    ForEachBatch(images.shape[0], spec.BatchSize, cancellationToken, (start, length) =>
                    {
                        using var part = images.narrow(0, start, length);
                        batches.Add(Features(spec, part));
                    });
                    using var features = cat(batches, 0);
                    return EvaluationFiles.Serialize([new(EvaluationFiles.FeaturesKey, features)], request);
                }
                finally
                {
                    foreach (var batch in batches) batch.Dispose();
                }
            }, cancellationToken);
        }
        // The last point to stop: past it the unit's file is written whole.
        cancellationToken.ThrowIfCancellationRequested();
        EvaluationTelemetry.UnitExecutions.Add(1, new("job", request.JobId), new("unit", request.Unit), new("side", request.Side.ToString()));
        await blobs.PutBytesAsync(request.OutputLocation, result);
        if (spec.UnitDelay > TimeSpan.Zero) await Task.Delay(spec.UnitDelay);
        LogUnit(request.JobId, request.Unit, request.Side.ToString(), request.Count);
        return request.OutputLocation;
    }

    public async Task<EvaluationResult> Merge(EvaluationMergeRequest request)
    {
        var metric = request.Spec.Metric;
        var name = EvaluationMetrics.NameOf(metric);
        if (request.PairUnits.Count > 0)
        {
            var key = metric == EvaluationMetric.Psnr ? EvaluationFiles.PsnrKey : EvaluationFiles.SsimKey;
            var values = new List<Tensor>();
            try
            {
                foreach (var location in request.PairUnits)
                {
                    var bytes = (await blobs.GetAsync(location)).Data;
                    values.Add(await Thread.InvokeAsync(() => EvaluationFiles.ReadUnit(bytes, key, location)));
                }
                // The reference's float32 mean over every image, in image order.
                var mean = await Thread.InvokeAsync(() =>
                {
                    using var all = cat(values, 0);
                    using var average = all.mean();
                    return (double)average.item<float>();
                });
                return new EvaluationResult(name, mean, request.Samples.Images, request.Reference.Images, null, false);
            }
            finally
            {
                foreach (var value in values) value.Dispose();
            }
        }

        var dimension = metric is EvaluationMetric.FdResNet18 or EvaluationMetric.RfdResNet18 ? ResNet18Features.FeatureDimension : FidInceptionV3.FeatureDimension;
        using var samples = await MomentsAsync(request.SampleUnits, dimension);
        if (metric is EvaluationMetric.Rfid or EvaluationMetric.RfdResNet18)
        {
            using var originals = await MomentsAsync(request.ReferenceUnits, dimension);
            var rfid = await Thread.InvokeAsync(() => FeatureDistances.Rfid(originals, samples));
            return new EvaluationResult(name, rfid, request.Samples.Images, request.Reference.Images, null, false);
        }

        using var statistics = await ReferenceStatisticsAsync(request, dimension);
        var distance = await Thread.InvokeAsync(() => FeatureDistances.Gfid(samples, statistics.Value));
        return new EvaluationResult(name, distance, request.Samples.Images, request.Reference.Images, statistics.Location, statistics.Reused);
    }

    protected override Action? TakeHeldResources()
    {
        foreach (var file in _npzFiles.Values) File.Delete(file);
        _npzFiles.Clear();
        var (resnet, inception) = (_resnet, _inception);
        (_resnet, _inception) = (null, null);
        return () =>
        {
            resnet?.Dispose();
            inception?.Model.Dispose();
        };
    }

    /// <summary>Runs on the worker thread: <paramref name="work"/> over [start, start + length) batches of
    /// <paramref name="batchSize"/> (the extractors' own batches, so the numbers do not change), checking for a cancel before each.</summary>
    private static void ForEachBatch(long count, int batchSize, CancellationToken cancellationToken, Action<long, long> work)
    {
        if (batchSize <= 0) throw new RaeJobException($"the evaluation batch size must be positive, got {batchSize}");
        for (long start = 0; start < count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            work(start, Math.Min(batchSize, count - start));
        }
    }

    /// <summary>Runs on the worker thread: the unit's features [n, D] float32 with the metric's extractor.</summary>
    private Tensor Features(EvaluationJobSpec spec, Tensor images)
    {
        if (spec.Metric is EvaluationMetric.FdResNet18 or EvaluationMetric.RfdResNet18)
            return (_resnet ??= ResNet18Features.Load()).Features(images, spec.BatchSize);
        var path = spec.InceptionWeightsPath ?? throw new RaeJobException($"metric {EvaluationMetrics.NameOf(spec.Metric)} needs the FID Inception weights (pt_inception-2015-12-05-6726825d.pth) and none were given");
        if (_inception is not { } loaded || loaded.Path != path)
        {
            _inception?.Model.Dispose();
            _inception = null;
            _inception = (path, FidInceptionV3.Load(path));
        }
        using var guard = no_grad();
        return _inception.Value.Model.Features(images, spec.BatchSize);
    }

    private async Task<Tensor> ImagesAsync(ResolvedEvaluationInput input, EvaluationUnitRequest request)
    {
        try
        {
            if (input.Input.Kind == EvaluationInputKind.Dataset)
            {
                var manifest = await ManifestAsync(input.Location);
                var parts = EvaluationFiles.ShardsCovering(manifest, request.First, request.Count);
                var shards = new Dictionary<string, byte[]>(StringComparer.Ordinal);
                foreach (var (shard, _, _) in parts)
                {
                    var path = $"datasets/{input.Location}/{shard.File}";
                    shards[shard.File] = _recentShards.TryGetValue(path, out var recent) ? recent : (await blobs.GetAsync(path)).Data;
                }
                _recentShards.Clear();
                foreach (var (shardFile, bytes) in shards) _recentShards[$"datasets/{input.Location}/{shardFile}"] = bytes;
                return await Thread.InvokeAsync(() => EvaluationFiles.DecodeDatasetRange(manifest, parts, shards, request.ImageSize));
            }
            var (file, _) = await NpzFileAsync(input.Location, input.Input.ToString());
            return await Thread.InvokeAsync(() => EvaluationFiles.ReadNpzRange(file, request.Spec.UnitSize, request.First, request.Count));
        }
        catch (Exception error) when (error is InvalidDataException or CheckpointFormatException)
        {
            throw new RaeJobException($"Evaluation job '{request.JobId}': reading images {request.First}..{request.First + request.Count - 1} of {input.Input}: {error.Message}", error);
        }
    }

    private async Task<DatasetManifest> ManifestAsync(string dataset)
    {
        if (_manifests.TryGetValue(dataset, out var cached)) return cached;
        var json = Encoding.UTF8.GetString((await blobs.GetAsync($"datasets/{dataset}/{DatasetManifest.FileName}")).Data);
        return _manifests[dataset] = DatasetManifest.FromJson(json, $"manifest of dataset '{dataset}'");
    }

    /// <summary>A scratch copy of the blob (fetched once per activation; the store verifies its checksum as it is read).</summary>
    private async Task<(string File, string Sha256)> NpzFileAsync(string location, string description)
    {
        BlobInfo info;
        try
        {
            info = await blobs.GetInfoAsync(location);
        }
        catch (BlobNotFoundException)
        {
            throw new RaeJobException($"{description}: '{location}' is not in the blob store");
        }
        var key = location + "@" + info.Sha256;
        if (_npzFiles.TryGetValue(key, out var existing)) return (existing, info.Sha256);
        var file = Path.Combine(Path.GetTempPath(), $"rae-eval-{Guid.NewGuid():N}.npz");
        await using (var source = await blobs.OpenReadAsync(location))
        await using (var target = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
            await source.CopyToAsync(target);
        _npzFiles[key] = file;
        return (file, info.Sha256);
    }

    private async Task<FeatureMoments> MomentsAsync(IReadOnlyList<string> units, long dimension)
    {
        var moments = await Thread.InvokeAsync(() => FeatureMoments.Empty(dimension));
        try
        {
            foreach (var location in units)
            {
                var bytes = (await blobs.GetAsync(location)).Data;
                await Thread.InvokeAsync(() =>
                {
                    using var features = EvaluationFiles.ReadUnit(bytes, EvaluationFiles.FeaturesKey, location);
                    moments.Add(features);
                });
            }
            return moments;
        }
        catch
        {
            moments.Dispose();
            throw;
        }
    }

    /// <summary>The reference's <c>mu</c>/<c>sigma</c>: given in its npz, read from the dataset's cache, or computed from its units (and then cached).</summary>
    private async Task<ReferenceStatistics> ReferenceStatisticsAsync(EvaluationMergeRequest request, long dimension)
    {
        if (request.Reference.HasStatistics)
        {
            var (file, _) = await NpzFileAsync(request.Reference.Location, request.Reference.Input.ToString());
            return new ReferenceStatistics(await Thread.InvokeAsync(() => LoadStatistics(file, request.Reference.Input.ToString(), dimension)), request.Reference.Location, true);
        }
        var cache = request.ReferenceStatisticsLocation;
        if (cache is not null && request.ReferenceUnits.Count == 0)
        {
            var (file, _) = await NpzFileAsync(cache, $"cached statistics of {request.Reference.Input}");
            return new ReferenceStatistics(await Thread.InvokeAsync(() => LoadStatistics(file, cache, dimension)), cache, true);
        }
        using var moments = await MomentsAsync(request.ReferenceUnits, dimension);
        var (statistics, bytes) = await Thread.InvokeAsync(() =>
        {
            var computed = moments.ToStatistics();
            if (cache is null) return (computed, (byte[]?)null);
            var temporary = Path.Combine(Path.GetTempPath(), $"rae-stats-{Guid.NewGuid():N}.npz");
            try
            {
                Npz.Save(temporary, [new("mu", computed.Mu), new("sigma", computed.Sigma)]);
                return (computed, File.ReadAllBytes(temporary));
            }
            finally
            {
                File.Delete(temporary);
            }
        });
        if (bytes is not null)
        {
            await blobs.PutBytesAsync(cache!, bytes, new Dictionary<string, string> { ["metric"] = EvaluationMetrics.NameOf(request.Spec.Metric), ["job"] = request.JobId });
            LogCached(request.JobId, cache!);
        }
        return new ReferenceStatistics(statistics, cache, false);
    }

    private static FidStatistics LoadStatistics(string file, string source, long dimension)
    {
        var statistics = Npz.LoadFidStatistics(file);
        if (statistics.Mu.shape[0] == dimension) return statistics;
        var found = statistics.Mu.shape[0];
        statistics.Dispose();
        throw new RaeJobException($"{source}: the statistics are {found}-d, the metric's features are {dimension}-d (fd_resnet18 uses 512-d ResNet18 features, fid 2048-d Inception features)");
    }

    private sealed record ReferenceStatistics(FidStatistics Value, string? Location, bool Reused) : IDisposable
    {
        public void Dispose() => Value.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Evaluation job {JobId}: unit {Unit} ({Side}, {Count} images) done")]
    private partial void LogUnit(string jobId, int unit, string side, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Evaluation job {JobId}: reference statistics cached at {Location}")]
    private partial void LogCached(string jobId, string location);
}
