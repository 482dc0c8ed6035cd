using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Placement;
using RAE.Grains.Storage;
using RAE.Grains.Workers;
using RAE.Models.IO;
using TorchSharp;

namespace RAE.Grains.Sampling;

/// <summary>Sampling metrics; <c>rae.sampling.unit_executions</c> counts every unit a worker computed (tags: job, unit).</summary>
public static class SamplingTelemetry
{
    public const string MeterName = "RAE.Sampling";
    private static readonly Meter Meter = new(MeterName);
    public static readonly Counter<long> UnitExecutions = Meter.CreateCounter<long>("rae.sampling.unit_executions", unit: "{unit}");
    /// <summary>Counts every unit whose sampling began on a worker's thread (tags: job, unit); a cancelled unit starts but never executes whole.</summary>
    public static readonly Counter<long> UnitStarts = Meter.CreateCounter<long>("rae.sampling.unit_starts", unit: "{unit}");
    public static readonly Counter<long> Samples = Meter.CreateCounter<long>("rae.sampling.samples", unit: "{sample}");
    /// <summary>Counts every model a sampling worker built (tags: job, silo-bound worker key, weights: checksum or file).</summary>
    public static readonly Counter<long> WeightLoads = Meter.CreateCounter<long>("rae.sampling.weight_loads", unit: "{load}");
}

/// <summary>
/// Samples units for one device of one silo. The model is loaded once and kept by a dedicated worker thread, which does
/// every tensor operation (parsing checkpoint payloads, sampling, decoding, PNG encoding, npz packing); the grain only
/// moves bytes. The loaded model is keyed by its weights (a training checkpoint's SHA-256 and part, or a file's path and
/// time) and configuration, not by job, so units and jobs that sample the same checkpoint on this device load it once.
/// </summary>
[SiloBoundPlacement]
public sealed class SamplingWorkerGrain(IBlobStore blobs, ICheckpointPayloadStore checkpoints, SiloDataRoots dataRoots,
    IOptions<RankDeviceOptions> devices, ILogger<SamplingWorkerGrain> logger)
    : DeviceWorkerGrain("sampler", devices), ISamplingWorkerGrain
{
    /// <summary>The unix epoch as a DOS date is out of range; 1980-01-01 is the first valid zip timestamp.</summary>
    private static readonly DateTime FixedNpzTimestamp = new(1980, 1, 1, 0, 0, 0, DateTimeKind.Unspecified);

    private LoadedPipeline? _loaded;
    private (string JobId, SamplingJobSpec Spec, SamplingSourcePin? Source, SamplingPlan Plan)? _plan;

    public Task<SamplingUnitResult> RunUnit(SamplingUnitRequest request) =>
        RunCancellableUnitAsync(request.JobId, cancellationToken => RunUnitAsync(request, cancellationToken));

    private async Task<SamplingUnitResult> RunUnitAsync(SamplingUnitRequest request, CancellationToken cancellationToken)
    {
        var plan = PlanOf(request);
        var clock = Stopwatch.StartNew();
        var pipeline = await PipelineAsync(request.JobId, plan);
        cancellationToken.ThrowIfCancellationRequested();
        SamplingTelemetry.UnitStarts.Add(1, new("job", request.JobId), new("unit", request.Unit));
        var (unitBytes, pngs) = await Thread.InvokeAsync(() =>
        {
            using var output = pipeline.Run(request.Labels, request.Seed, cancellationToken);
            var pngBytes = plan.WritePngs && output.Images is not null ? SamplingUnitFiles.EncodePngs(output.Images) : [];
            return (SamplingUnitFiles.Serialize(output, request.Unit, request.FirstIndex, request.Seed), pngBytes);
        }, cancellationToken);
        // The last point to stop: past it the unit's files are written whole.
        cancellationToken.ThrowIfCancellationRequested();
        var seconds = clock.Elapsed.TotalSeconds;
        SamplingTelemetry.UnitExecutions.Add(1, new("job", request.JobId), new("unit", request.Unit));
        SamplingTelemetry.Samples.Add(request.Labels.Count, new KeyValuePair<string, object?>("job", request.JobId));

        for (var i = 0; i < pngs.Count; i++)
            await blobs.PutBytesAsync($"{plan.ImagesPrefix}/{request.FirstIndex + i:D6}.png", pngs[i]);
        // The unit's own file goes last: its presence means the PNGs are there too.
        var location = plan.UnitLocation(request.Unit);
        await blobs.PutBytesAsync(location, unitBytes);
        if (plan.UnitDelay > TimeSpan.Zero) await Task.Delay(plan.UnitDelay);
        logger.LogDebug("Sampling job {Job}: unit {Unit} ({Count} samples) done in {Seconds:F2}s", request.JobId, request.Unit, request.Labels.Count, seconds);
        return new SamplingUnitResult(request.Unit, request.Labels.Count, location, plan.Decodes, seconds);
    }

    /// <summary>The plan of the request's job, parsed once for all the units of that job this activation runs.</summary>
    private SamplingPlan PlanOf(SamplingUnitRequest request)
    {
        if (_plan is { } cached && cached.JobId == request.JobId && cached.Spec == request.Spec && cached.Source == request.Source)
            return cached.Plan;
        var plan = SamplingPlan.Create(request.JobId, request.Spec, dataRoots, request.Source);
        _plan = (request.JobId, request.Spec, request.Source, plan);
        return plan;
    }

    public async Task<long> AssembleNpz(string jobId, SamplingJobSpec spec, int unitCount)
    {
        var outputPrefix = SamplingPlan.OutputPrefixOf(jobId, spec);
        var npzLocation = SamplingPlan.NpzLocationOf(outputPrefix);
        if (unitCount <= 0) throw new RaeJobException($"Sampling job '{jobId}': no units to pack into {npzLocation}.");
        var unitLocations = Enumerable.Range(0, unitCount).Select(unit => SamplingPlan.UnitLocationOf(outputPrefix, unit));
        // No job id in the temporary name: a name the caller chose never reaches the local file system.
        var temporary = Path.Combine(Path.GetTempPath(), $"rae-samples-{Guid.NewGuid():N}.npz");
        ImageNpzWriter? writer = null;
        try
        {
            foreach (var location in unitLocations)
            {
                var content = await blobs.GetAsync(location);
                await Thread.InvokeAsync(() =>
                {
                    using var images = SamplingUnitFiles.ReadImages(content.Data, location);
                    writer ??= Npz.BeginImages(temporary, images.shape[1], images.shape[2], images.shape[3], FixedNpzTimestamp);
                    writer.Append(images);
                });
            }
            var count = await Thread.InvokeAsync(() =>
            {
                var written = writer!.Count;
                writer.Complete();
                return written;
            });
            await using (var file = new FileStream(temporary, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true))
                await blobs.PutAsync(npzLocation, file);
            return count;
        }
        finally
        {
            if (writer is not null) await Thread.InvokeAsync(writer.Dispose);
            File.Delete(temporary);
        }
    }

    public async Task Release(string jobId)
    {
        if (_loaded is { } loaded && loaded.JobId == jobId)
        {
            _loaded = null;
            await Thread.InvokeAsync(loaded.Pipeline.Dispose);
        }
    }

    protected override Action? TakeHeldResources()
    {
        var loaded = _loaded;
        _loaded = null;
        return loaded is null ? null : loaded.Pipeline.Dispose;
    }

    /// <summary>
    /// The cached pipeline when weights and configuration are unchanged, else a fresh one. A training checkpoint's payload
    /// is read here (asynchronous I/O, verified against the pinned SHA-256); parsing and loading it run on the worker thread.
    /// </summary>
    private async Task<SamplingPipeline> PipelineAsync(string jobId, SamplingPlan plan)
    {
        var (weights, identity) = Identity(plan);
        if (_loaded is { } loaded && loaded.Identity == identity)
        {
            _loaded = loaded with { JobId = jobId };
            return loaded.Pipeline;
        }
        // A training checkpoint is downloaded (and verified at its last byte) into a scratch file; the worker thread then
        // reads only the weights it samples with from it: a DiT^DH-S state is over 3 GB, its EMA weights under 1 GB.
        await using var payload = plan.Source is null ? null : ScratchFile.Create();
        if (plan.Source is { Checkpoint: var checkpoint })
        {
            try
            {
                await using (var source = await checkpoints.OpenReadAsync(checkpoint))
                    await source.CopyToAsync(payload!);
                payload!.Position = 0;
            }
            catch (Exception error) when (error is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                throw new RaeJobException($"Sampling job '{jobId}': the checkpoint of training job '{checkpoint.JobId}' at step {checkpoint.Step} cannot be read: {error.Message}", error);
            }
        }
        var previous = _loaded;
        _loaded = null;
        var device = torch.device(Device);
        var pipeline = await Thread.InvokeAsync(() =>
        {
            previous?.Pipeline.Dispose();
            return payload is null
                ? new SamplingPipeline(plan.Config, plan.CheckpointPath!, device, FileLoadOptions(plan))
                : FromTrainingCheckpoint(plan, payload, device);
        });
        _loaded = new LoadedPipeline(identity, jobId, pipeline);
        SamplingTelemetry.WeightLoads.Add(1, new("job", jobId), new("worker", this.GetPrimaryKeyString()), new("weights", weights));
        logger.LogInformation("Sampling worker {Worker} loaded {Weights} for job {Job}", this.GetPrimaryKeyString(), weights, jobId);
        return pipeline;
    }

    /// <summary>Runs on the worker thread: the chosen part ("ema." by default) of a DiT^DH training state, prefix stripped, loaded strictly.</summary>
    private static SamplingPipeline FromTrainingCheckpoint(SamplingPlan plan, Stream payload, TorchSharp.torch.Device device)
    {
        var checkpoint = plan.Source!.Checkpoint;
        var name = $"checkpoint of job '{checkpoint.JobId}' at step {checkpoint.Step}";
        Dictionary<string, TorchSharp.torch.Tensor> tensors;
        string prefix;
        try
        {
            (prefix, tensors) = CheckpointParts.Load(payload, plan.WeightsPart, plan.WeightsPartExplicit, $"The {name}");
        }
        catch (MissingCheckpointPartException error)
        {
            throw new RaeJobException($"Sampling job cannot use it: {error.Message}", error);
        }
        catch (Exception error) when (error is InvalidDataException or CheckpointFormatException or FormatException or System.Text.Json.JsonException)
        {
            throw new RaeJobException($"The {name} is not a safetensors training state (was it written by another workload?): {error.Message}", error);
        }
        try
        {
            try
            {
                return new SamplingPipeline(plan.Config, tensors, prefix, name, device);
            }
            catch (Exception error) when (error is ArgumentException or InvalidDataException)
            {
                throw new RaeJobException($"Sampling the {name}: {error.Message}", error);
            }
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    private static CheckpointLoadOptions? FileLoadOptions(SamplingPlan plan) => !plan.WeightsPartExplicit ? null
        : new CheckpointLoadOptions { Entry = plan.WeightsPart == "model" ? CheckpointEntry.Model : CheckpointEntry.Ema };

    /// <summary>What the loaded model depends on: the weights (checksum and part, or file and time) and the configuration.</summary>
    private static (string Weights, string Identity) Identity(SamplingPlan plan)
    {
        var weights = plan.Source is { Checkpoint: var checkpoint }
            ? $"{checkpoint.Sha256.ToLowerInvariant()}:{plan.WeightsPart}"
            : $"{Path.GetFullPath(plan.CheckpointPath!)}@{File.GetLastWriteTimeUtc(plan.CheckpointPath!).Ticks}:{(plan.WeightsPartExplicit ? plan.WeightsPart : "auto")}";
        var identity = weights + "\n" + plan.ConfigSha256;
        return (weights, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(identity))));
    }

    private sealed record LoadedPipeline(string Identity, string JobId, SamplingPipeline Pipeline);
}
