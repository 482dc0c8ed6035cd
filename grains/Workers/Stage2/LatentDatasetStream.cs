using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Models.Data;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage2;

/// <summary>
/// One rank's training stream over a latent dataset of the blob store (<c>data.source: latents</c>).
/// <list type="bullet">
/// <item>Order: <see cref="LatentEpochPlan"/> (DistributedSampler with shuffle and drop_last, seeded with data.seed + epoch;
/// rank r takes every W-th position), so the global batch of a step is the same for any rank count.</item>
/// <item>Per-sample draws (noise, time, label dropout) as <see cref="SyntheticLatentStream.SlotDraws"/>, keyed by the global
/// slot; the horizontal flip (the reference's RandomHorizontalFlip(p = 0.5) on the image) picks the stored latents of the
/// mirrored image with probability 1/2 from a generator seeded by (job seed, step, slot), when the dataset was encoded
/// with flips; without them no flip is applied (a latent cannot be mirrored after the fact).</item>
/// <item>Latents are read from the silo's local shard cache and normalised as the reference's RAE.encode does.</item>
/// <item>Prefetch: when a step's rows are taken, the rows of the next step are read on a background task, so the step's
/// compute overlaps the next step's storage reads.</item>
/// </list>
/// </summary>
public sealed class LatentDatasetStream : IDisposable
{
    private const ulong FlipStream = 0x666C6970UL;

    private readonly LatentDatasetReader _reader;
    private readonly LatentNormalization? _normalization;
    private readonly long _jobSeed;
    private readonly CancellationTokenSource _stopping = new();
    private (long Step, Task<LatentRows> Rows)? _prefetch;
    private (long Step, LatentRows Rows)? _current;

    private LatentDatasetStream(LatentDatasetManifest manifest, LatentShardCache cache, LatentDatasetReader reader, LatentNormalization? normalization,
        LatentEpochPlan plan, long jobSeed)
    {
        Manifest = manifest;
        Cache = cache;
        _reader = reader;
        _normalization = normalization;
        Plan = plan;
        _jobSeed = jobSeed;
    }

    public LatentDatasetManifest Manifest { get; }

    public LatentShardCache Cache { get; }

    public LatentEpochPlan Plan { get; }

    /// <summary>Steps whose rows were read ahead by the background prefetch (the rest were read when the step began).</summary>
    public int PrefetchedSteps { get; private set; }

    /// <summary>Where the statistics came from; null when the latents are not normalised.</summary>
    public string? NormalizationSource => _normalization?.Source;

    /// <summary>Reads and checks the manifest, loads the statistics and builds the rank's plan. Blocks: call it on the worker thread.</summary>
    public static LatentDatasetStream Open(LatentTrainingData data, DiTJobConfig job, RankWorkerContext context)
    {
        var name = job.Data.Dataset ?? throw new ArgumentException($"configuration '{job.Config.SourceName}': data.dataset must name the latent dataset");
        var spec = context.Spec;
        var manifest = data.ReadManifestAsync(name).GetAwaiter().GetResult();
        LatentTrainingData.EnsureFits(manifest, job.Config, spec.GlobalBatchSize);
        var normalization = data.LoadNormalizationAsync(job.Config, manifest).GetAwaiter().GetResult();
        var cache = data.CreateShardCache(name);
        var reader = new LatentDatasetReader(manifest, cache);
        var plan = new LatentEpochPlan(manifest.Count, spec.GlobalBatchSize, context.WorldSize, context.Rank, job.Data.Seed);
        return new LatentDatasetStream(manifest, cache, reader, normalization, plan, spec.Seed);
    }

    /// <summary>Makes step <paramref name="step"/>'s rows current (from the prefetch when it is that step's) and starts reading the next step's.</summary>
    public void BeginStep(long step)
    {
        if (_current?.Step == step) return;
        Task<LatentRows> rows;
        if (_prefetch is { } prefetched && prefetched.Step == step)
        {
            rows = prefetched.Rows;
            PrefetchedSteps++;
        }
        else
        {
            Forget(_prefetch);
            rows = ReadStepAsync(step);
        }
        _prefetch = null;
        LatentRows current;
        try
        {
            current = rows.GetAwaiter().GetResult();
        }
        catch (RaeJobException error)
        {
            throw new InvalidDataException(error.Message);
        }
        _current = (step, current);
        _prefetch = (step + 1, Task.Run(() => ReadStepAsync(step + 1)));
    }

    /// <summary>Samples [<paramref name="first"/>, +<paramref name="count"/>) of this rank's share of the current step, on <paramref name="device"/>.</summary>
    public TrainingBatch MicroBatch(long step, int first, int count, Device device)
    {
        if (_current is not { } current || current.Step != step) throw new InvalidOperationException($"step {step} was not begun (BeginStep)");
        var planned = Plan.Samples(step, first, count);
        var shape = _reader.LatentShape;
        var rowElements = (int)_reader.RowElements;
        using var scope = NewDisposeScope();
        var latents = tensor(current.Rows.Latents.AsSpan(first * rowElements, count * rowElements).ToArray(), ScalarType.Float32)
            .view([count, .. shape]);
        if (_normalization is not null) latents = _normalization.Apply(latents);
        var noises = new Tensor[count];
        var timeUniforms = new float[count];
        var dropUniforms = new float[count];
        for (var i = 0; i < count; i++)
            (noises[i], timeUniforms[i], dropUniforms[i]) = SyntheticLatentStream.SlotDraws(_jobSeed, step, planned[i].GlobalSlot, shape);
        return new TrainingBatch(
            latents.to(device).MoveToOuterDisposeScope(),
            stack(noises).to(device).MoveToOuterDisposeScope(),
            tensor(current.Rows.Labels[first..(first + count)]).to(device).MoveToOuterDisposeScope(),
            tensor(timeUniforms).to(device).MoveToOuterDisposeScope(),
            dropUniforms);
    }

    /// <summary>Whether global slot <paramref name="slot"/> of step <paramref name="step"/> reads the mirrored image's latents.</summary>
    public bool Flipped(long step, int slot)
    {
        if (!Manifest.Flips) return false;
        using var generator = new Generator(SyntheticLatentStream.Mix(FlipStream, (ulong)_jobSeed, (ulong)step, (ulong)slot), CPU);
        using var coin = rand([1], generator: generator, dtype: ScalarType.Float64);
        return coin.item<double>() < 0.5;
    }

    private Task<LatentRows> ReadStepAsync(long step)
    {
        var planned = Plan.Samples(step, 0, Plan.LocalBatch);
        var samples = planned.Select(sample => (sample.DatasetIndex, Flipped(step, sample.GlobalSlot))).ToArray();
        return _reader.ReadAsync(samples, _stopping.Token);
    }

    private static void Forget((long Step, Task<LatentRows> Rows)? prefetch) =>
        // An abandoned prefetch (the job jumped to another step) may still fail; its exception is observed here.
        prefetch?.Rows.ContinueWith(task => _ = task.Exception, TaskScheduler.Default);

    public void Dispose()
    {
        _stopping.Cancel();
        Forget(_prefetch);
        try
        {
            _prefetch?.Rows.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
            // A prefetch cancelled or failed while the job is stopping; nothing will read it.
        }
        _prefetch = null;
        _current = null;
        _reader.Dispose();
        _stopping.Dispose();
    }
}
