using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
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
    public static readonly Counter<long> Samples = Meter.CreateCounter<long>("rae.sampling.samples", unit: "{sample}");
}

/// <summary>
/// Samples units for one device of one silo. The model of the current job is loaded once and kept by a dedicated worker
/// thread, which does every tensor operation (sampling, decoding, PNG encoding, npz packing); the grain only moves blobs.
/// </summary>
[SiloBoundPlacement]
public sealed class SamplingWorkerGrain(IBlobStore blobs, ILogger<SamplingWorkerGrain> logger) : Grain, ISamplingWorkerGrain
{
    /// <summary>The unix epoch as a DOS date is out of range; 1980-01-01 is the first valid zip timestamp.</summary>
    private static readonly DateTime FixedNpzTimestamp = new(1980, 1, 1, 0, 0, 0, DateTimeKind.Unspecified);

    private DedicatedWorkerThread? _thread;
    private (string Key, SamplingPipeline Pipeline)? _loaded;

    private string Device
    {
        get
        {
            var (_, suffix) = SiloBoundKey.Parse(this.GetPrimaryKeyString());
            return suffix.StartsWith("sampler:", StringComparison.Ordinal) ? suffix["sampler:".Length..]
                : throw new RaeJobException($"Grain key '{this.GetPrimaryKeyString()}' is not a sampler key (it has no 'sampler:<device>' suffix).");
        }
    }

    private DedicatedWorkerThread Thread => _thread ??= new DedicatedWorkerThread($"rae-sampler-{Device}");

    public async Task<SamplingUnitResult> RunUnit(SamplingUnitRequest request)
    {
        var plan = SamplingPlan.Create(request.JobId, request.Spec);
        var device = Device;
        var key = PipelineKey(request.JobId, plan);
        var clock = Stopwatch.StartNew();
        var (unitBytes, pngs) = await Thread.InvokeAsync(() =>
        {
            var pipeline = Pipeline(key, plan, device);
            using var output = pipeline.Run(request.Labels, request.Seed);
            var pngBytes = plan.WritePngs && output.Images is not null ? SamplingUnitFiles.EncodePngs(output.Images) : [];
            return (SamplingUnitFiles.Serialize(output, request.Unit, request.FirstIndex, request.Seed), pngBytes);
        });
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

    public async Task<long> AssembleNpz(string jobId, IReadOnlyList<string> unitLocations, string npzLocation)
    {
        if (unitLocations.Count == 0) throw new RaeJobException($"Sampling job '{jobId}': no units to pack into {npzLocation}.");
        var temporary = Path.Combine(Path.GetTempPath(), $"rae-{jobId}-{Guid.NewGuid():N}.npz");
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
        if (_loaded is { } loaded && loaded.Key.StartsWith(jobId + "|", StringComparison.Ordinal))
        {
            _loaded = null;
            await Thread.InvokeAsync(loaded.Pipeline.Dispose);
        }
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_thread is { } thread)
        {
            if (_loaded is { } loaded) thread.InvokeAsync(loaded.Pipeline.Dispose);
            _loaded = null;
            _thread = null;
            thread.Dispose();
        }
        return Task.CompletedTask;
    }

    /// <summary>Runs on the worker thread: the cached pipeline when the job's model settings are unchanged, else a fresh one.</summary>
    private SamplingPipeline Pipeline(string key, SamplingPlan plan, string device)
    {
        if (_loaded is { } loaded && loaded.Key == key) return loaded.Pipeline;
        _loaded?.Pipeline.Dispose();
        _loaded = null;
        var pipeline = new SamplingPipeline(plan.Config, plan.CheckpointPath, torch.device(device));
        _loaded = (key, pipeline);
        return pipeline;
    }

    private static string PipelineKey(string jobId, SamplingPlan plan)
    {
        var identity = plan.Config.ToYaml() + "\n" + Path.GetFullPath(plan.CheckpointPath) + "\n" + File.GetLastWriteTimeUtc(plan.CheckpointPath).Ticks;
        return jobId + "|" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(identity)));
    }
}
