using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.IO;
using RAE.Models.Stage1;
using RAE.Configuration;
using RAE.Models.Stage1.Discriminator;
using RAE.Models.Stage1.Losses;
using RAE.Models.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// One data-parallel rank of a Stage 1 (decoder) training job (rae-spec §4.4), a multi-phase worker: per step the rank
/// grain all-reduces, in this order, (1) with the GAN loss on, the shard's last-layer gradients of the reconstruction and
/// GAN losses, so that λ is the global batch's; (2) the decoder gradients, whose mean updates the decoder (AdamW, schedule,
/// EMA); (3) from disc_upd_start, each of the disc_updates discriminator updates' gradients. Every rank takes the mean
/// gradient over its shard of the global batch and all randomness is per global sample (<see cref="DatasetImageStream"/>,
/// <see cref="SlotDraws"/>), so 2 ranks × B train as 1 rank × 2B. The encoder is frozen and runs under no_grad.
/// The reported loss is the reconstruction loss (L1 + perceptual_weight·perceptual); the total, λ and the discriminator's
/// values are in <see cref="LastStepDetails"/>. Gradient accumulation is not supported (each phase would need every
/// micro-batch's graph at once): grad_accum_steps must be 1.
/// </summary>
public sealed class DecoderRankWorker(IBlobStore store) : IMultiPhaseRankWorker
{
    public const string WorkloadName = TrainingJobSpecs.DecoderWorkload;

    private enum Phase { None, LastLayer, Decoder, Discriminator }

    private RankWorkerContext? _context;
    private DecoderJobConfig? _job;
    private string? _parsedSha256;
    private Device _device = CPU;
    private IRepresentationEncoder? _encoder;
    private RepresentationAutoencoder? _rae;
    private RepresentationAutoencoder? _emaRae;
    private IPerceptualLoss? _perceptual;
    private IDiscriminator? _discriminator;
    private Stage1DataParallelStep? _trainer;
    private DatasetImageStream? _data;
    private OnlineReconstructionEvaluator? _evaluator;
    private LatentNormalization? _normalization;

    private Phase _phase;
    private Stage1GeneratorPass? _pass;
    private Tensor? _images;
    private Tensor? _fakes;
    private int _discriminatorUpdates;
    private bool _trainDiscriminator;
    private double _learningRate;
    private Dictionary<string, double> _details = [];

    public int ParameterCount { get; private set; }

    public double LastGradientNorm { get; private set; }

    public IReadOnlyDictionary<string, double> LastStepDetails => _details;

    public long Step => Trainer.StepCount;

    public DecoderJobConfig Job => _job ?? throw NotInitialized();

    internal RankWorkerContext Context => _context ?? throw NotInitialized();
    /// <summary>The replica's RAE (frozen encoder, trained decoder).</summary>
    public RepresentationAutoencoder Rae => _rae ?? throw NotInitialized();

    /// <summary>The EMA of the decoder, the weights a checkpoint exports as <c>decoder-ema</c>.</summary>
    public GeneralDecoder EmaDecoder => (_emaRae ?? throw NotInitialized()).Decoder;
    internal IDiscriminator? Discriminator => _discriminator;
    internal Stage1DataParallelStep Trainer => _trainer ?? throw NotInitialized();
    internal DatasetImageStream Data => _data ?? throw NotInitialized();

    public void Initialize(RankWorkerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var job = _job is { } parsed && context.Spec.Config is { } configuration && _parsedSha256 == configuration.Sha256
            ? parsed
            : DecoderJobConfig.FromSpec(context.Spec);
        _parsedSha256 = context.Spec.Config?.Sha256;
        var spec = context.Spec;
        if (spec.GradientAccumulation != 1)
            throw new ArgumentException($"training.grad_accum_steps is {spec.GradientAccumulation}; the Stage 1 workload trains without gradient accumulation (set it to 1).");
        if (spec.GlobalBatchSize % context.WorldSize != 0)
            throw new ArgumentException($"GlobalBatchSize {spec.GlobalBatchSize} is not a multiple of the {context.WorldSize} ranks.");
        ReleaseTensors();
        _context = context;
        _job = job;
        _device = torch.device(context.Device);
        if (context.Threads > 0 && get_num_threads() != context.Threads) set_num_threads(context.Threads);

        var rae = job.Rae;
        _encoder = DecoderComponents.Encoder(rae, _device);
        var architecture = job.Decoder(_encoder.HiddenSize);
        var options = new RaeOptions(rae.EncoderInputSize, rae.DecoderPatchSize, rae.NoiseTau, rae.ReshapeTo2d);
        var normalization = _normalization = LoadNormalization(rae);
        using (var generator = new Generator((ulong)spec.Seed, CPU))
        {
            _rae = new RepresentationAutoencoder(_encoder, architecture, options, normalization, _device, generator);
            _emaRae = RepresentationAutoencoder.ForDecoding(new GeneralDecoder(architecture, _device, generator), _encoder.ImageMean, _encoder.ImageStd,
                normalization, options with { NoiseTau = 0 });
            _discriminator = DecoderComponents.Discriminator(job.Gan, _device, generator);
        }
        if (rae.PretrainedDecoderPath is { } pretrained)
        {
            if (!File.Exists(pretrained)) throw new FileNotFoundException($"stage_1.params.pretrained_decoder_path: {pretrained} does not exist", pretrained);
            _rae.LoadDecoderWeights(pretrained);
        }
        ExponentialMovingAverage.CopyFrom(_emaRae.Decoder, _rae.Decoder);
        _emaRae.eval();
        foreach (var parameter in _emaRae.parameters()) parameter.requires_grad = false;
        _perceptual = DecoderComponents.Perceptual(job.Gan.Loss, _device);

        var losses = new Stage1LossSchedule(job.Gan.Loss, job.StepsPerEpoch(spec.GlobalBatchSize));
        var augment = new DiffAug(job.Gan.Disc.Augment.Prob, job.Gan.Disc.Augment.Cutout);
        var stage1Discriminator = _discriminator is { } d ? new Stage1Discriminator(d.Module, d.Classify) : null;
        _trainer = new Stage1DataParallelStep(_rae, losses, job.GeneratorSettings(spec.GlobalBatchSize), augment, _perceptual, stage1Discriminator,
            stage1Discriminator is null ? null : job.DiscriminatorSettings(spec.GlobalBatchSize), _emaRae.Decoder, job.Training.EmaDecay,
            job.Training.ClipGrad ?? 0, job.Training.Precision);
        ParameterCount = checked((int)(_trainer.DecoderParameters.Sum(p => p.numel()) + _trainer.DiscriminatorParameters.Sum(p => p.numel())));
        _data = new DatasetImageStream(store, job.DatasetName, job.ImageSize, spec.Seed, spec.GlobalBatchSize, job.Data.NumSamples);
        if (spec.OnlineEvaluation is { } online && context.Rank == 0) _evaluator = OnlineReconstructionEvaluator.Create(online, store, _data, job.DatasetName);
        LastGradientNorm = 0;
    }

    public GradientResult ComputeGradients(long step, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var trainer = Trainer;
        if (step != trainer.StepCount + 1)
            throw new InvalidOperationException($"Step {step} was asked for, but this replica is at step {trainer.StepCount} (expected {trainer.StepCount + 1}).");
        ResetPhase();
        var context = Context;
        var local = context.Spec.GlobalBatchSize / context.WorldSize;
        var firstSlot = context.Rank * local;
        _trainDiscriminator = trainer.TrainsDiscriminatorThisStep;
        _images = Data.Batch(step, firstSlot, local, _device);
        Rae.train();
        using var latent = Rae.Encode(_images, SlotDraws.LatentNoise(context.Spec.Seed, step, firstSlot));
        _pass = trainer.ForwardGenerator(_images, latent, new SlotDraws(context.Spec.Seed, step, 0, firstSlot, local));
        cancellationToken.ThrowIfCancellationRequested();
        _details = new Dictionary<string, double>
        {
            ["rec_loss"] = _pass.ReconstructionLoss,
            ["lpips_loss"] = _pass.LpipsLoss,
        };
        var reconstruction = _pass.ReconstructionLoss + Job.Gan.Loss.PerceptualWeight * _pass.LpipsLoss;
        if (_pass.UsesGan)
        {
            _phase = Phase.LastLayer;
            return new GradientResult(trainer.LastLayerGradients(_pass), reconstruction, local);
        }
        _phase = Phase.Decoder;
        return new GradientResult(DecoderGradients(0), reconstruction, local);
    }

    public float[]? ContinueStep(long step, float[] averaged)
    {
        ArgumentNullException.ThrowIfNull(averaged);
        var trainer = Trainer;
        switch (_phase)
        {
            case Phase.LastLayer:
                var weight = trainer.AdaptiveWeightOf(averaged);
                _phase = Phase.Decoder;
                return DecoderGradients(weight);
            case Phase.Decoder when !_trainDiscriminator:
                return null;
            case Phase.Decoder:
                ApplyDecoder(averaged);
                using (var clean = CleanLatent()) _fakes = trainer.Fakes(clean);
                _phase = Phase.Discriminator;
                _discriminatorUpdates = 0;
                return DiscriminatorGradients(step);
            case Phase.Discriminator when _discriminatorUpdates + 1 < Job.Gan.Loss.DiscUpdates:
                ApplyDiscriminator(averaged);
                return DiscriminatorGradients(step);
            case Phase.Discriminator:
                return null;
            default:
                throw new InvalidOperationException($"Step {step}: no phase is pending (ComputeGradients must come first).");
        }
    }

    public double ApplyUpdate(long step, float[] averagedGradients)
    {
        ArgumentNullException.ThrowIfNull(averagedGradients);
        try
        {
            switch (_phase)
            {
                case Phase.Decoder:
                    ApplyDecoder(averagedGradients);
                    break;
                case Phase.Discriminator:
                    ApplyDiscriminator(averagedGradients);
                    break;
                default:
                    throw new InvalidOperationException($"Step {step}: the update arrived in phase {_phase}; the last phase must be the decoder's or the discriminator's.");
            }
            if (Job.Training.SampleEvery > 0 && step % Job.Training.SampleEvery == 0 && Context.Rank == 0) WriteReconstructionGrid(step);
            if (_evaluator is { } evaluator && Context.Spec.OnlineEvaluation!.IsDue(step))
                foreach (var (key, value) in evaluator.Score(_device, images => Reconstruct(images, ema: true)))
                    _details[key] = value;
            return _learningRate;
        }
        finally
        {
            ResetPhase();
        }
    }

    private float[] DecoderGradients(double weight)
    {
        var pass = _pass ?? throw new InvalidOperationException("no generator pass is pending");
        _pass = null;
        var gradients = Trainer.DecoderGradients(pass, weight);
        _details["gan_loss"] = pass.GanLossValue;
        _details["lambda"] = pass.AdaptiveWeight;
        _details["total_loss"] = pass.TotalLoss;
        return gradients;
    }

    private void ApplyDecoder(float[] averaged)
    {
        var update = Trainer.ApplyDecoder(averaged);
        LastGradientNorm = update.GradientNorm;
        _learningRate = update.LearningRate;
    }

    private float[] DiscriminatorGradients(long step)
    {
        var context = Context;
        var local = context.Spec.GlobalBatchSize / context.WorldSize;
        using var reals = _images! * 2.0 - 1.0;
        var result = Trainer.DiscriminatorGradients(_fakes!, reals, new SlotDraws(context.Spec.Seed, step, 1 + _discriminatorUpdates, context.Rank * local, local));
        _details["disc_loss"] = result.Loss;
        _details["logits_real"] = result.LogitsReal;
        _details["logits_fake"] = result.LogitsFake;
        _details["disc_acc"] = result.Accuracy;
        return result.Gradients;
    }

    private void ApplyDiscriminator(float[] averaged)
    {
        var update = Trainer.ApplyDiscriminator(averaged);
        _details["disc_lr"] = update.LearningRate;
        _discriminatorUpdates++;
    }

    /// <summary>The eval-mode (noise-free) latents of the step's images, for the discriminator's fakes.</summary>
    private Tensor CleanLatent()
    {
        Rae.eval();
        try
        {
            return Rae.Encode(_images!);
        }
        finally
        {
            Rae.train();
        }
    }

    /// <summary>Eval-mode (noise-free) reconstructions in pixel space of images [b,3,H,W] in [0,1], by the EMA or the trained decoder.</summary>
    public Tensor Reconstruct(Tensor images, bool ema)
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        Rae.eval();
        try
        {
            using var latent = Rae.Encode(images);
            return (ema ? _emaRae! : Rae).Decode(latent).MoveToOuterDisposeScope();
        }
        finally
        {
            Rae.train();
        }
    }

    /// <summary>The first inputs of the dataset (center-cropped) above, their EMA reconstructions below, as one PNG in the blob store.</summary>
    private void WriteReconstructionGrid(long step)
    {
        var count = Math.Min(8, Data.ImageCount);
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var inputs = Data.CenterCropped(Enumerable.Range(0, count).Select(i => (long)i).ToArray(), _device);
        var reconstructions = Reconstruct(inputs, ema: true).clamp(0, 1);
        var grid = cat([cat(inputs.unbind(0), 2), cat(reconstructions.unbind(0), 2)], 1);
        var bytes = grid.mul(255).round().to(ScalarType.Byte).permute(1, 2, 0).unsqueeze(0).cpu();
        var png = Sampling.SamplingUnitFiles.EncodePngs(bytes)[0];
        store.PutBytesAsync(ReconstructionGridPath(Context.JobId ?? WorkloadName, step), png).GetAwaiter().GetResult();
    }

    /// <summary>Where the reconstruction grid of a step goes: <c>jobs/&lt;job&gt;/recon/step-NNNNNNN.png</c>.</summary>
    public static string ReconstructionGridPath(string jobId, long step) => $"jobs/{jobId}/recon/step-{step:D7}.png";


    private static LatentNormalization? LoadNormalization(RaeParams rae)
    {
        if (rae.NormalizationStatPath is not { } path) return null;
        if (!File.Exists(path)) throw new FileNotFoundException($"stage_1.params.normalization_stat_path: {path} does not exist", path);
        using var stats = CheckpointLoader.LoadLatentStats(path);
        return new LatentNormalization(stats.Mean, stats.Var, rae.Eps);
    }

    public float[] GetParameters()
    {
        using var scope = NewDisposeScope();
        var all = Trainer.DecoderParameters.Concat(Trainer.DiscriminatorParameters).Select(p => p.detach().flatten()).ToArray();
        using var flat = cat(all).cpu();
        return flat.data<float>().ToArray();
    }

    public void SetParameters(float[] parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.Length != ParameterCount)
            throw new ArgumentException($"Got {parameters.Length} parameters; the decoder and discriminator have {ParameterCount}.", nameof(parameters));
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var flat = tensor(parameters, device: _device);
        long offset = 0;
        foreach (var parameter in Trainer.DecoderParameters.Concat(Trainer.DiscriminatorParameters))
        {
            parameter.copy_(flat.narrow(0, offset, parameter.numel()).view(parameter.shape));
            offset += parameter.numel();
        }
        ExponentialMovingAverage.CopyFrom(EmaDecoder, Rae.Decoder);
    }

    public void SaveState(Stream destination) => DecoderTrainingState.Save(this, destination);

    public void LoadState(Stream source)
    {
        ResetPhase();
        DecoderTrainingState.Load(this, source);
    }

    private void ResetPhase()
    {
        _phase = Phase.None;
        _pass?.Dispose();
        _pass = null;
        _images?.Dispose();
        _images = null;
        _fakes?.Dispose();
        _fakes = null;
        _discriminatorUpdates = 0;
    }

    private static InvalidOperationException NotInitialized() => new("The decoder worker was used before Initialize.");

    public void Dispose() => ReleaseTensors();

    private void ReleaseTensors()
    {
        ResetPhase();
        _trainer?.Dispose();
        _discriminator?.Dispose();
        _perceptual?.Dispose();
        _emaRae?.Dispose();
        _rae?.Dispose();
        (_encoder as IDisposable)?.Dispose();
        _normalization?.Dispose();
        _normalization = null;
        _trainer = null;
        _discriminator = null;
        _perceptual = null;
        _rae = _emaRae = null;
        _encoder = null;
        _data = null;
        _evaluator?.Dispose();
        _evaluator = null;
        _context = null;
    }
}

public sealed class DecoderRankWorkerFactory(IBlobStore store) : IRankWorkerFactory
{
    public string Workload => DecoderRankWorker.WorkloadName;

    public IRankWorker Create() => new DecoderRankWorker(store);
}
