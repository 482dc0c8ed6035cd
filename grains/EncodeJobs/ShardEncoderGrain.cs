using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Placement;
using RAE.Grains.Storage;
using RAE.Grains.Workers;
using RAE.Models.Data;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Encoders;
using TorchSharp;

namespace RAE.Grains.EncodeJobs;

/// <summary>Encode metrics; <c>rae.encode.shard_executions</c> counts every shard a worker encoded (tags: job, shard).</summary>
public static class EncodeTelemetry
{
    public const string MeterName = "RAE.Encode";
    private static readonly Meter Meter = new(MeterName);
    public static readonly Counter<long> ShardExecutions = Meter.CreateCounter<long>("rae.encode.shard_executions", unit: "{shard}");
    /// <summary>Counts every shard whose encoding began on a worker's thread (tags: job, shard); a cancelled shard starts but never executes whole.</summary>
    public static readonly Counter<long> ShardStarts = Meter.CreateCounter<long>("rae.encode.shard_starts", unit: "{shard}");
    public static readonly Counter<long> Images = Meter.CreateCounter<long>("rae.encode.images", unit: "{image}");
}

/// <summary>
/// Encodes image shards for one device of one silo. The frozen encoder is loaded once per configuration and kept by a
/// dedicated worker thread, which does every tensor operation (decoding, cropping, encoding, moments, shard files); the
/// grain turns only read and write blobs.
/// </summary>
[SiloBoundPlacement]
public sealed class ShardEncoderGrain(IBlobStore blobs, IOptions<RankDeviceOptions> devices, ILogger<ShardEncoderGrain> logger)
    : DeviceWorkerGrain("encoder", devices), IShardEncoderGrain
{
    private LoadedEncoder? _loaded;
    private (EncodeJobSpec Spec, EncodePlan Plan)? _plan;

    public Task<EncodedShardResult> EncodeShard(EncodeShardRequest request) =>
        RunCancellableUnitAsync(request.JobId, cancellationToken => EncodeShardAsync(request, cancellationToken));

    private async Task<EncodedShardResult> EncodeShardAsync(EncodeShardRequest request, CancellationToken cancellationToken)
    {
        var plan = PlanOf(request.JobId, request.Spec);
        var clock = Stopwatch.StartNew();
        var shard = request.Shard;
        var source = await Guarded(() => blobs.GetAsync(plan.ImageShardPath(shard.File)), $"reading image shard {shard.File} of dataset '{plan.Spec.Dataset}'");
        var encoder = await EncoderAsync(plan);
        cancellationToken.ThrowIfCancellationRequested();
        EncodeTelemetry.ShardStarts.Add(1, new("job", request.JobId), new("shard", shard.File));
        var encoded = await Thread.InvokeAsync(() =>
        {
            var actual = DatasetManifest.Sha256Hex(source.Data);
            if (!string.Equals(actual, shard.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new RaeJobException($"dataset '{plan.Spec.Dataset}' shard {shard.File} fails its checksum (sha256 {actual}, manifest {shard.Sha256})");
            var images = ImageShard.Read(source.Data, $"dataset '{plan.Spec.Dataset}' shard {shard.File}");
            if (images.Count != shard.Images)
                throw new RaeJobException($"dataset '{plan.Spec.Dataset}' shard {shard.File} holds {images.Count} images, the manifest says {shard.Images}");
            using var result = encoder.Encode(images, request.ClassCount, cancellationToken);
            return (result.Bytes, Moments: result.Moments.ToBytes(), result.Count, result.CountsPerClass, result.Skipped, Shape: encoder.LatentShape);
        }, cancellationToken);
        // The last point to stop: past it the moments and the latent shard are written whole.
        cancellationToken.ThrowIfCancellationRequested();
        var sha256 = DatasetManifest.Sha256Hex(encoded.Bytes);
        var what = $"writing latent shard {plan.LatentShardFile(shard.File)} of '{plan.Spec.LatentName}'";
        // The moments go first: a latent shard in storage always has its moments beside it.
        await Guarded(() => blobs.PutBytesAsync(plan.MomentsPath(shard.File), encoded.Moments), what);
        var stored = await Guarded(() => blobs.PutBytesAsync(plan.LatentShardPath(shard.File), encoded.Bytes), what);
        if (stored.Size != encoded.Bytes.Length || !string.Equals(stored.Sha256, sha256, StringComparison.OrdinalIgnoreCase))
            throw new RaeJobException($"latent shard {plan.LatentShardFile(shard.File)} of '{plan.Spec.LatentName}' was stored as {stored.Size} bytes with sha256 {stored.Sha256}, but {encoded.Bytes.Length} bytes with {sha256} were written");
        var seconds = clock.Elapsed.TotalSeconds;
        EncodeTelemetry.ShardExecutions.Add(1, new("job", request.JobId), new("shard", shard.File));
        EncodeTelemetry.Images.Add(shard.Images, new KeyValuePair<string, object?>("job", request.JobId));
        if (plan.Spec.ShardDelay > TimeSpan.Zero) await Task.Delay(plan.Spec.ShardDelay);
        logger.LogDebug("Encode job {Job}: shard {Shard} ({Count} latents) done in {Seconds:F2}s", request.JobId, shard.File, encoded.Count, seconds);
        return new EncodedShardResult(request.Index, shard.File, plan.LatentShardFile(shard.File), encoded.Count, stored.Size, sha256,
            encoded.CountsPerClass.ToArray(), encoded.Skipped.Select(s => new DatasetSkippedFile(s.Name, s.Reason)).ToArray(), encoded.Shape, seconds);
    }

    public async Task<long> WriteStatistics(LatentStatisticsRequest request)
    {
        var plan = PlanOf(request.JobId, request.Spec);
        if (request.Shards.Count == 0 || request.Shards.Sum(s => (long)s.Count) == 0)
            throw new RaeJobException($"Encode job '{request.JobId}': no image of dataset '{plan.Spec.Dataset}' could be encoded, so there are no latent statistics.");
        var shape = request.Shards[0].LatentShape.ToArray();
        var what = $"reading the latents of '{plan.Spec.LatentName}' for their statistics";
        LatentStatisticsBytes files;
        if (plan.Spec.Statistics == LatentStatisticsMethod.Exact)
        {
            var moments = new List<(string, byte[])>();
            foreach (var shard in request.Shards)
            {
                var path = plan.MomentsPath(shard.SourceShard);
                moments.Add((path, (await Guarded(() => blobs.GetAsync(path), what)).Data));
            }
            files = await Thread.InvokeAsync(() => LatentStatisticsFiles.Exact(shape, moments));
        }
        else
        {
            var stream = new MomentumLatentStream(shape, plan.Spec.BatchSize);
            try
            {
                foreach (var shard in request.Shards)
                {
                    var path = plan.LatentShardPath(shard.SourceShard);
                    var bytes = (await Guarded(() => blobs.GetAsync(path), what)).Data;
                    await Thread.InvokeAsync(() =>
                    {
                        using var latents = LatentShard.Read(bytes, path, shape);
                        stream.Add(latents.Latents);
                        if (latents.FlippedLatents is not null) stream.Add(latents.FlippedLatents);
                    });
                }
                files = await Thread.InvokeAsync(stream.Finish);
            }
            finally
            {
                await Thread.InvokeAsync(stream.Dispose);
            }
        }
        var writing = $"writing the statistics of '{plan.Spec.LatentName}'";
        await Guarded(() => blobs.PutBytesAsync(plan.StatPtPath, files.StatPt), writing);
        await Guarded(() => blobs.PutBytesAsync(plan.StatSafetensorsPath, files.Safetensors), writing);
        return files.Count;
    }

    public async Task Release()
    {
        if (_loaded is { } loaded)
        {
            _loaded = null;
            await Thread.InvokeAsync(loaded.Dispose);
        }
    }

    protected override Action? TakeHeldResources()
    {
        var loaded = _loaded;
        _loaded = null;
        return loaded is null ? null : loaded.Dispose;
    }

    private EncodePlan PlanOf(string jobId, EncodeJobSpec spec)
    {
        if (_plan is { } cached && cached.Spec == spec) return cached.Plan;
        var plan = EncodePlan.Create(jobId, spec);
        _plan = (spec, plan);
        return plan;
    }

    /// <summary>The loaded encoder when the configuration and options are unchanged, else a fresh one (built on the worker thread).</summary>
    private async Task<ShardEncoder> EncoderAsync(EncodePlan plan)
    {
        var identity = (plan.ConfigSha256, plan.Options);
        if (_loaded is { } loaded && loaded.Identity == identity) return loaded.Shards;
        var previous = _loaded;
        _loaded = null;
        var device = torch.device(Device);
        _loaded = await Thread.InvokeAsync(() =>
        {
            previous?.Dispose();
            IRepresentationEncoder encoder;
            try
            {
                encoder = FrozenEncoders.FromConfig(plan.Encoder, device);
            }
            catch (Exception error) when (error is IOException or InvalidDataException or ArgumentException or NotSupportedException)
            {
                throw new RaeJobException($"The encoder of stage_1 ({plan.Encoder.EncoderCls}) cannot be loaded: {error.Message}", error);
            }
            try
            {
                return new LoadedEncoder(identity, encoder, new ShardEncoder(encoder, plan.Options, device: device));
            }
            catch (ArgumentException error)
            {
                (encoder as IDisposable)?.Dispose();
                throw new RaeJobException($"stage_1 cannot encode: {error.Message}", error);
            }
        });
        logger.LogInformation("Shard encoder {Worker} loaded {Encoder} at {Size} px", this.GetPrimaryKeyString(), plan.Encoder.EncoderCls, plan.Options.ImageSize);
        return _loaded.Shards;
    }

    /// <summary>Storage failures reach the job as a <see cref="RaeJobException"/> naming what was being done and the store's reason.</summary>
    private static async Task<T> Guarded<T>(Func<Task<T>> work, string what)
    {
        try
        {
            return await work();
        }
        catch (BlobStoreException error)
        {
            throw new RaeJobException($"latent storage failed while {what}: {error.Message}", error);
        }
    }

    private sealed record LoadedEncoder((string, ShardEncoderOptions) Identity, IRepresentationEncoder Encoder, ShardEncoder Shards) : IDisposable
    {
        public void Dispose() => (Encoder as IDisposable)?.Dispose();
    }
}
