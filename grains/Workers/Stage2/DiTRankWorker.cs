using RAE.Configuration;
using RAE.Grains.Datasets;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using RAE.Models.Training;
using RAE.Models.Transport;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage2;

/// <summary>
/// One data-parallel rank of a DiT^DH Stage-2 training job (rae-spec §7.2). The step itself (flow-matching loss, backward,
/// clipping with the pre-clip norm in <see cref="LastGradientNorm"/>, LR schedule, AdamW, EMA) is <see cref="Stage2TrainingStep"/>;
/// this worker draws the data and connects the step's gradient synchronisation to the group's all-reduce, whose result
/// arrives in <see cref="ApplyUpdate"/>. The data, the noise, the times and the dropout are drawn per global sample
/// (<see cref="SyntheticLatentStream"/>), and each rank returns the mean gradient over its shard, so the group's mean
/// all-reduce gives the gradient of the mean loss over the global batch whatever the rank count. Micro-batches really
/// accumulate: gradients add up over all of them before the one optimizer step.
/// <para>Data: <see cref="SyntheticLatentStream"/> for <c>data.source: synthetic-latents</c>, <see cref="LatentDatasetStream"/>
/// (the blob store's latent shards, through <see cref="LatentTrainingData"/>) for <c>data.source: latents</c>.</para>
/// <para>Class dropout is applied here from the per-sample draws (label → null class), exactly what the reference's
/// token_drop does, and the network runs with training=false so it does not draw a second time (label dropout is the
/// only train-mode behaviour of DiT^DH).</para>
/// </summary>
public sealed class DiTRankWorker(LatentTrainingData? latentData = null) : IOverlappingRankWorker
{
    public const string WorkloadName = "dit-dh";

    private RankWorkerContext? _context;
    private DiTJobConfig? _job;
    private string? _parsedSha256;
    private DiTwDDTHead? _model;
    private DiTwDDTHead? _ema;
    private Parameter[] _trainable = [];
    private Stage2TrainingStep? _trainer;
    private FlatGradientBuffer? _gradients;
    private int[] _groupEnds = [];
    private SyntheticLatentStream? _stream;
    private LatentDatasetStream? _latents;
    private Device _device = CPU;

    public int ParameterCount { get; private set; }

    /// <summary>Optimizer steps applied so far (the step of the last <see cref="ApplyUpdate"/>).</summary>
    public long Step
    {
        get => _trainer?.StepCount ?? 0;
        private set => (_trainer ?? throw NotInitialized()).StepCount = value;
    }

    /// <summary>Global L2 norm of the averaged gradients of the last step, before clipping.</summary>
    public double LastGradientNorm { get; private set; }

    public DiTJobConfig Job => _job ?? throw NotInitialized();

    internal RankWorkerContext? Context => _context;

    /// <summary>The latent dataset stream of a <c>data.source: latents</c> job; null for synthetic latents.</summary>
    public LatentDatasetStream? Latents => _latents;

    /// <summary>Where step <paramref name="step"/>'s global batch lies in the data (epoch, batch offset, permutation seed).</summary>
    public RAE.Models.Data.DataPosition DataPositionOf(long step) =>
        _latents?.Plan.PositionOf(step) ?? (_stream ?? throw NotInitialized()).PositionOf(step);

    /// <summary>Samples in the job's dataset (sets the epoch length).</summary>
    public long DatasetSize => _latents?.Plan.DatasetSize ?? Job.Data.NumSamples;

    internal DiTwDDTHead Model => _model ?? throw NotInitialized();

    internal DiTwDDTHead Ema => _ema ?? throw NotInitialized();

    internal AdamW Optimizer => (_trainer ?? throw NotInitialized()).Optimizer;

    internal IReadOnlyList<Parameter> TrainableParameters => _trainable;

    public void Initialize(RankWorkerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        // A re-formed group initialises the same worker again: the configuration is parsed once per worker.
        var job = _job is { } parsed && context.Spec.Config is { } configuration && _parsedSha256 == configuration.Sha256
            ? parsed
            : DiTJobConfig.FromSpec(context.Spec);
        _parsedSha256 = context.Spec.Config?.Sha256;
        var spec = context.Spec;
        if (spec.GlobalBatchSize % (context.WorldSize * spec.GradientAccumulation) != 0)
            throw new ArgumentException($"GlobalBatchSize {spec.GlobalBatchSize} is not a multiple of ranks {context.WorldSize} x accumulation {spec.GradientAccumulation}.");
        ReleaseTensors();
        _context = context;
        _job = job;
        _device = torch.device(context.Device);
        // libtorch's intra-op pool is process-wide: every rank of a silo asks for the same thread count.
        if (context.Threads > 0 && torch.get_num_threads() != context.Threads) torch.set_num_threads(context.Threads);

        using (var generator = new Generator((ulong)spec.Seed, CPU))
        {
            _model = new DiTwDDTHead(job.Model, generator);
            _ema = new DiTwDDTHead(job.Model, generator);
        }
        _model.to(_device);
        _ema.to(_device);
        ExponentialMovingAverage.CopyFrom(_ema, _model);
        _ema.eval();
        foreach (var parameter in _ema.parameters()) parameter.requires_grad = false;
        _model.eval(); // class dropout is drawn per sample by this worker, see the class remarks
        _trainable = _model.parameters().Where(p => p.requires_grad).ToArray();
        ParameterCount = checked((int)_trainable.Sum(p => p.numel()));

        if (job.Data.Source == DataSource.Latents)
        {
            var data = latentData ?? throw new InvalidOperationException(
                $"data.source 'latents' needs the silo's latent dataset access ({nameof(LatentTrainingData)}); this worker was created without it");
            _latents = LatentDatasetStream.Open(data, job, context);
        }
        else _stream = new SyntheticLatentStream(job.LatentShape, job.Model.NumClasses, job.Data.NumSamples, job.Data.Seed, spec.Seed, spec.GlobalBatchSize);
        var optimizer = job.Training.Optimizer;
        _trainer = new Stage2TrainingStep(_model, job.Transport(), job.Schedule(spec.GlobalBatchSize, DatasetSize), job.Training.ClipGrad, _ema,
            job.Training.EmaDecay, optimizer.Betas[0], optimizer.Betas[1], optimizer.WeightDecay, optimizer.Eps, job.Training.Precision);
        // The gradient vector in the order backward finishes it, so a finished block extends a finished prefix.
        var groups = _model.GradientGroupsInBackwardOrder();
        var ordered = groups.SelectMany(group => group).ToArray();
        if (ordered.Length != _trainable.Length)
            throw new InvalidOperationException($"The model's gradient groups hold {ordered.Length} parameters, it has {_trainable.Length} trainable ones.");
        _gradients = new FlatGradientBuffer(ordered, _device);
        var end = 0L;
        _groupEnds = groups.Select(group => checked((int)(end += group.Sum(p => p.numel())))).ToArray();
        Step = 0;
        LastGradientNorm = 0;
    }

    /// <summary>The gradient buffer when it is host memory (on a GPU it reaches the host only at the end).</summary>
    public float[]? OverlapVector => _device.type == DeviceType.CPU ? _gradients?.Host : null;

    public GradientResult ComputeGradients(long step, CancellationToken cancellationToken = default) => Compute(step, null, cancellationToken);

    public GradientResult ComputeGradients(long step, Collectives.GradientReadiness readiness, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(readiness);
        if (OverlapVector is not { } vector || readiness.Length != vector.Length)
            throw new InvalidOperationException($"This replica reports no gradient progress over {readiness.Length} values (its vector: {OverlapVector?.Length.ToString() ?? "device memory"}).");
        return Compute(step, readiness, cancellationToken);
    }

    private GradientResult Compute(long step, Collectives.GradientReadiness? readiness, CancellationToken cancellationToken)
    {
        var context = _context ?? throw NotInitialized();
        var spec = context.Spec;
        var accumulation = spec.GradientAccumulation;
        var microBatch = spec.GlobalBatchSize / (context.WorldSize * accumulation);
        var localSamples = microBatch * accumulation;
        var trainer = _trainer ?? throw NotInitialized();
        var gradients = _gradients ?? throw NotInitialized();
        gradients.Attach();
        _latents?.BeginStep(step);
        double lossSum = 0;
        for (var micro = 0; micro < accumulation; micro++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var firstSlot = (context.Rank * accumulation + micro) * microBatch;
            using var batch = _latents is { } latents
                ? latents.MicroBatch(step, micro * microBatch, microBatch, _device)
                : _stream!.Batch(step, firstSlot, microBatch, _device);
            var labels = DropLabels(batch);
            var times = trainer.Transport.SampleTime(batch.TimeUniforms);
            // Only the last micro-batch's backward finishes gradients; its blocks report as they do.
            _model!.GradientGroupFinished = readiness is not null && micro == accumulation - 1 ? ProgressReporter(readiness) : null;
            try
            {
                // Sum over the shard / shard size: the group's mean all-reduce then yields the gradient of the global mean loss.
                lossSum += trainer.Accumulate((x, t) => _model.forward(x, t, labels), batch.Latents, batch.Noise, times, localSamples);
            }
            finally
            {
                _model.GradientGroupFinished = null;
            }
        }
        // The buffer backward wrote into: the group's all-reduce overwrites it with the mean, which ApplyUpdate takes as it is.
        var flattened = gradients.Publish();
        // A rank's loss is its own: a NaN/Inf one poisons its share of the mean gradient, so every replica skips the step
        // together. The last value: it belongs to the group that backward finishes last, which no all-reduce has taken yet.
        if (!double.IsFinite(lossSum) && flattened.Length > 0) flattened[^1] = float.NaN;
        return new GradientResult(flattened, lossSum / localSamples, localSamples);
    }

    public double ApplyUpdate(long step, float[] averagedGradients)
    {
        ArgumentNullException.ThrowIfNull(averagedGradients);
        if (averagedGradients.Length != ParameterCount)
            throw new ArgumentException($"Update has {averagedGradients.Length} gradients; the DiT^DH model has {ParameterCount} trainable parameters.", nameof(averagedGradients));
        if (step != Step + 1)
            throw new InvalidOperationException($"Update for step {step} arrived, but this replica is at step {Step} (expected {Step + 1}).");
        // The synchronisation hook: the group's all-reduce already ran, its mean becomes every replica's gradient.
        var gradients = _gradients ?? throw NotInitialized();
        var update = (_trainer ?? throw NotInitialized()).Update(_ => gradients.Load(averagedGradients));
        LastGradientNorm = update.GradientNorm;
        return update.LearningRate;
    }

    public float[] GetParameters()
    {
        if (_context is null) throw NotInitialized();
        using var scope = NewDisposeScope();
        using var flat = cat(_trainable.Select(p => p.detach().flatten()).ToArray()).cpu();
        return flat.data<float>().ToArray();
    }

    public void SetParameters(float[] parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (_context is null) throw NotInitialized();
        if (parameters.Length != ParameterCount)
            throw new ArgumentException($"Got {parameters.Length} parameters; the DiT^DH model has {ParameterCount} trainable parameters.", nameof(parameters));
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var flat = tensor(parameters, device: _device);
        long offset = 0;
        foreach (var parameter in _trainable)
        {
            parameter.copy_(flat.narrow(0, offset, parameter.numel()).view(parameter.shape));
            offset += parameter.numel();
        }
        // The EMA starts as a copy of the model, so a broadcast at step 0 must move it too.
        if (Step == 0) ExponentialMovingAverage.CopyFrom(_ema!, _model!);
    }

    public void SaveState(Stream destination) => DiTTrainingState.Save(this, destination);

    public void LoadState(Stream source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Step = DiTTrainingState.Load(this, source);
    }

    public void Dispose() => ReleaseTensors();

    private Tensor DropLabels(TrainingBatch batch)
    {
        var probability = Job.Model.ClassDropoutProb;
        if (probability <= 0) return batch.Labels.alias();
        var dropped = batch.DropUniforms.Select(u => u < probability).ToArray();
        using var mask = tensor(dropped).to(_device);
        return batch.Labels.masked_fill(mask, Model.NullClass);
    }

    /// <summary>Advances <paramref name="readiness"/> to the end of the longest run of finished groups from the first.</summary>
    private Action<int> ProgressReporter(Collectives.GradientReadiness readiness)
    {
        var finished = new bool[_groupEnds.Length];
        var prefix = 0;
        return group =>
        {
            if ((uint)group >= (uint)finished.Length) return;
            finished[group] = true;
            while (prefix < finished.Length && finished[prefix]) prefix++;
            if (prefix > 0) readiness.Advance(_groupEnds[prefix - 1]);
        };
    }

    private static InvalidOperationException NotInitialized() => new("The DiT^DH worker was used before Initialize.");

    private void ReleaseTensors()
    {
        _trainer?.Dispose();
        _gradients?.Dispose();
        _gradients = null;
        _model?.Dispose();
        _ema?.Dispose();
        _stream?.Dispose();
        _latents?.Dispose();
        _trainer = null;
        _model = _ema = null;
        _stream = null;
        _latents = null;
        _trainable = [];
        _context = null;
    }
}

public sealed class DiTRankWorkerFactory(LatentTrainingData? latentData = null) : IRankWorkerFactory
{
    public string Workload => DiTRankWorker.WorkloadName;

    public IRankWorker Create() => new DiTRankWorker(latentData);
}
