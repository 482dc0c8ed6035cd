using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using RAE.GrainInterfaces;
using RAE.Grains.Evaluation;
using RAE.Models.IO;
using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Evaluation;

/// <summary>Tiny image sets for evaluation tests and the direct, in-process computations their scores must equal.</summary>
internal static class EvaluationTestData
{
    /// <summary>One extractor for every direct computation of the test run (loading the ONNX weights is the slow part).</summary>
    private static readonly Lazy<ResNet18Features> SharedResNet = new(() => ResNet18Features.Load());

    /// <summary>Seeded uint8 images [count, size, size, 3]: a smooth pattern plus noise, so features vary between images.</summary>
    public static Tensor Images(int count, int size, long seed)
    {
        var generator = new Generator((ulong)seed);
        using var scope = NewDisposeScope();
        var noise = randint(0, 96, [count, size, size, 3], generator: generator);
        var ramp = arange(size).reshape(1, size, 1, 1) * (160 / size);
        var shade = randint(0, 64, [count, 1, 1, 3], generator: generator);
        return (noise + ramp + shade).clamp(0, 255).to(ScalarType.Byte).MoveToOuterDisposeScope();
    }

    public static string WriteNpz(string folder, string name, Tensor images)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, name);
        using var writer = Npz.BeginImages(path, images.shape[1], images.shape[2], images.shape[3]);
        writer.Append(images);
        writer.Complete();
        return path;
    }

    /// <summary>fd_resnet18 computed in this process from the features of batches of <paramref name="batchSize"/>, no cluster, no units.</summary>
    public static double DirectFdResNet18(Tensor samples, Tensor reference, int batchSize) => SiloArithmetic.Run(() =>
    {
        var resnet = SharedResNet.Value;
        using var sampleMoments = FeatureDistances.Moments(batch => resnet.Features(batch, batchSize), samples, batchSize, ResNet18Features.FeatureDimension);
        using var referenceMoments = FeatureDistances.Moments(batch => resnet.Features(batch, batchSize), reference, batchSize, ResNet18Features.FeatureDimension);
        using var statistics = referenceMoments.ToStatistics();
        return FeatureDistances.Gfid(sampleMoments, statistics);
    });

    /// <summary>The reference statistics (mu, sigma) of the images' ResNet18 features, as an ADM-style <c>.npz</c>.</summary>
    public static string WriteResNetStatistics(string folder, string name, Tensor images, int batchSize) => SiloArithmetic.Run(() =>
    {
        var resnet = SharedResNet.Value;
        using var moments = FeatureDistances.Moments(batch => resnet.Features(batch, batchSize), images, batchSize, ResNet18Features.FeatureDimension);
        using var statistics = moments.ToStatistics();
        var path = Path.Combine(folder, name);
        Npz.Save(path, [new("mu", statistics.Mu), new("sigma", statistics.Sigma)]);
        return path;
    });

    public static async Task<EvaluationJobStatus> WaitForEndAsync(IGrainFactory grains, string jobId, TimeSpan? timeout = null)
    {
        var job = grains.GetGrain<IEvaluationJobGrain>(jobId);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(120));
        while (true)
        {
            try
            {
                var status = await job.GetStatus();
                if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return status;
            }
            catch (Exception error) when (error is not RaeJobException && DateTime.UtcNow < deadline)
            {
                // The job's silo was killed: the call fails until membership declares it dead, then it re-activates.
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Evaluation job {jobId} did not end in time.");
            await Task.Delay(100);
        }
    }
}

/// <summary>Counts <c>rae.evaluation.unit_executions</c> per (job, unit) and per (job, side) while it is alive.</summary>
internal sealed class EvaluationUnitCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Job, int Unit), long> _units = new();
    private readonly ConcurrentDictionary<(string Job, string Side), long> _sides = new();

    public EvaluationUnitCounter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == EvaluationTelemetry.MeterName && instrument.Name == "rae.evaluation.unit_executions")
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? job = null, side = null;
            int? unit = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "job") job = tag.Value as string;
                if (tag.Key == "side") side = tag.Value as string;
                if (tag.Key == "unit" && tag.Value is int index) unit = index;
            }
            if (job is null || unit is null || side is null) return;
            _units.AddOrUpdate((job, unit.Value), value, (_, previous) => previous + value);
            _sides.AddOrUpdate((job, side), value, (_, previous) => previous + value);
        });
        _listener.Start();
    }

    public long Count(string job, int unit) => _units.GetValueOrDefault((job, unit));

    public long Side(string job, EvaluationSide side) => _sides.GetValueOrDefault((job, side.ToString()));

    public long Total(string job) => _units.Where(pair => pair.Key.Job == job).Sum(pair => pair.Value);

    public void Dispose() => _listener.Dispose();
}
