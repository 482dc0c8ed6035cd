using RAE.Configuration;
using RAE.Models.Nn;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Losses;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>The generator forward pass of one rank's shard, its graph kept for the backward after the group agrees on λ.</summary>
public sealed class Stage1GeneratorPass : IDisposable
{
    internal Stage1GeneratorPass(long step, bool usesGan, bool usesLpips, Tensor reconstructionTotal, Tensor? ganLoss,
        double reconstructionLoss, double lpipsLoss)
    {
        Step = step;
        UsesGan = usesGan;
        UsesLpips = usesLpips;
        ReconstructionTotal = reconstructionTotal;
        GanLoss = ganLoss;
        ReconstructionLoss = reconstructionLoss;
        LpipsLoss = lpipsLoss;
        GanLossValue = ganLoss?.item<float>() ?? 0;
    }

    public long Step { get; }
    public bool UsesGan { get; }
    public bool UsesLpips { get; }
    public double ReconstructionLoss { get; }
    public double LpipsLoss { get; }
    public double GanLossValue { get; }
    public double AdaptiveWeight { get; internal set; }
    public double TotalLoss { get; internal set; } = double.NaN;
    internal Tensor ReconstructionTotal { get; }
    internal Tensor? GanLoss { get; }

    public void Dispose()
    {
        ReconstructionTotal.Dispose();
        GanLoss?.Dispose();
    }
}

/// <summary>The discriminator's local gradients of one update and what the reference logs of it (means over the shard).</summary>
public sealed record Stage1DiscriminatorGradients(float[] Gradients, double Loss, double LogitsReal, double LogitsFake, double Accuracy);

/// <summary>
/// <see cref="Stage1TrainingStep"/> split at its gradient synchronisation points, for data-parallel ranks (spec §4.4):
/// <list type="number">
/// <item>generator forward on the shard (<see cref="ForwardGenerator"/>); with the GAN loss on, the shard's gradients of the
/// reconstruction and GAN losses on <c>decoder_pred.weight</c> (<see cref="LastLayerGradients"/>), whose group mean gives a
/// global λ (<see cref="AdaptiveWeightOf"/>). The reference's DDP computes λ from each rank's own batch, so its λ changes with
/// the rank count; here it is the λ of the global batch, the same for any number of ranks;</item>
/// <item>the backward of the total loss (<see cref="DecoderGradients"/>), then the update from the group's mean
/// (<see cref="ApplyDecoder"/>: non-finite guard, clipping, schedule, AdamW, EMA);</item>
/// <item>per discriminator update: gradients on the shard (<see cref="DiscriminatorGradients"/>), then the update from the
/// group mean (<see cref="ApplyDiscriminator"/>), the discriminator schedule indexed by its own update count (the reference quirk).</item>
/// </list>
/// Spectral norm's power iteration runs once per discriminator forward in train mode and depends only on the weights, which
/// every rank holds identically, with the same number of forwards per step: its vectors stay identical on every rank.
/// BatchNormLocal normalises per sample (virtual batch 1) and holds no running statistics, so nothing about it depends on the shard.
/// </summary>
public sealed class Stage1DataParallelStep : IDisposable
{
    private const string LastLayerName = "decoder_pred.weight";

    private readonly RepresentationAutoencoder _rae;
    private readonly IPerceptualLoss? _perceptual;
    private readonly Stage1Discriminator? _discriminator;
    private readonly DiffAug _augment;
    private readonly Parameter[] _decoderParameters;
    private readonly Parameter[] _discriminatorParameters;
    private readonly Parameter _lastLayer;
    private readonly Stage1OptimizerSettings _generatorSettings;
    private readonly Stage1OptimizerSettings? _discriminatorSettings;
    // Backward writes straight into these (see FlatGradientBuffer): no per-phase cat, copy out and copy back.
    private readonly FlatGradientBuffer _decoderGradients;
    private readonly FlatGradientBuffer? _discriminatorGradients;

    public Stage1DataParallelStep(RepresentationAutoencoder rae, Stage1LossSchedule losses, Stage1OptimizerSettings generator, DiffAug augment,
        IPerceptualLoss? perceptual, Stage1Discriminator? discriminator, Stage1OptimizerSettings? discriminatorOptimizer,
        nn.Module? emaDecoder, double emaDecay, double clipGrad, ComputePrecision precision = ComputePrecision.Float32)
    {
        Precision = precision;
        _rae = rae ?? throw new ArgumentNullException(nameof(rae));
        Losses = losses ?? throw new ArgumentNullException(nameof(losses));
        _generatorSettings = generator ?? throw new ArgumentNullException(nameof(generator));
        _augment = augment ?? throw new ArgumentNullException(nameof(augment));
        Stage1StepArguments.Check(losses, perceptual, discriminator, discriminatorOptimizer, emaDecay, clipGrad);
        _perceptual = perceptual;
        _discriminator = discriminator;
        _discriminatorSettings = discriminatorOptimizer;
        EmaDecoder = emaDecoder;
        EmaDecay = emaDecay;
        ClipGrad = clipGrad;
        _decoderParameters = rae.Decoder.parameters().ToArray();
        foreach (var parameter in _decoderParameters) parameter.requires_grad = true;
        _lastLayer = rae.Decoder.named_parameters().SingleOrDefault(p => p.name == LastLayerName).parameter
            ?? throw new ArgumentException($"the decoder has no '{LastLayerName}', which the adaptive weight needs", nameof(rae));
        GeneratorOptimizer = TrainingOptimizer.CreateAdamW(_decoderParameters, generator.Schedule.BaseLr, generator.Beta1, generator.Beta2, generator.WeightDecay);
        _discriminatorParameters = discriminator?.Module.parameters().Where(p => p.requires_grad).ToArray() ?? [];
        if (discriminator is not null && discriminatorOptimizer is not null)
        {
            if (_discriminatorParameters.Length == 0) throw new ArgumentException("the discriminator has no trainable parameter", nameof(discriminator));
            DiscriminatorOptimizer = TrainingOptimizer.CreateAdamW(_discriminatorParameters, discriminatorOptimizer.Schedule.BaseLr,
                discriminatorOptimizer.Beta1, discriminatorOptimizer.Beta2, discriminatorOptimizer.WeightDecay);
            _discriminatorGradients = new FlatGradientBuffer(_discriminatorParameters, _discriminatorParameters[0].device);
        }
        _decoderGradients = new FlatGradientBuffer(_decoderParameters, _lastLayer.device);
    }

    /// <summary>training.precision: bf16 runs the decoder's forward (and so its backward) on bf16 matmuls and attention
    /// (<see cref="Autocast"/>); weights, gradients, losses, the discriminator and the optimizers stay fp32.</summary>
    public ComputePrecision Precision { get; }

    public Stage1LossSchedule Losses { get; }
    public AdamW GeneratorOptimizer { get; }
    public AdamW? DiscriminatorOptimizer { get; }
    public nn.Module? EmaDecoder { get; }
    public double EmaDecay { get; }
    public double ClipGrad { get; }
    public IReadOnlyList<Parameter> DecoderParameters => _decoderParameters;
    public IReadOnlyList<Parameter> DiscriminatorParameters => _discriminatorParameters;

    /// <summary>Generator steps taken so far (the global step g, 0-based, of the next step).</summary>
    public long StepCount { get; set; }

    /// <summary>Discriminator updates made so far: the discriminator schedule's index (the reference quirk).</summary>
    public long DiscriminatorStepCount { get; set; }

    /// <summary>Length of <see cref="LastLayerGradients"/>: the reconstruction and the GAN gradient of the last layer.</summary>
    public long LastLayerGradientLength => 2 * _lastLayer.numel();

    public bool TrainsDiscriminatorThisStep => Losses.TrainDiscriminator(StepCount);

    /// <summary>The train-mode forward of the generator step on this rank's images [b,3,H,W] in [0,1] and their (noisy) latents.</summary>
    public Stage1GeneratorPass ForwardGenerator(Tensor images, Tensor latent, IUniformDraws draws)
    {
        ArgumentNullException.ThrowIfNull(draws);
        var step = StepCount;
        var useGan = Losses.UseGan(step);
        var useLpips = Losses.UseLpips(step);
        using var scope = NewDisposeScope();
        _rae.train();
        _discriminator?.Module.eval();
        ClearGradients(_decoderParameters);
        var recon = DecodeInPrecision(latent);
        var recLoss = (recon - images).abs().mean();
        var lpipsLoss = useLpips ? _perceptual!.Loss(images * 2.0 - 1.0, recon * 2.0 - 1.0) : zeros([], dtype: recLoss.dtype, device: recLoss.device);
        var reconTotal = recLoss + Losses.Loss.PerceptualWeight * lpipsLoss;
        Tensor? ganLoss = null;
        if (useGan)
        {
            var logitsFake = _discriminator!.Logits(_augment.Apply(recon * 2.0 - 1.0, draws));
            ganLoss = GanLosses.GeneratorLoss(Losses.Loss.GenLoss, logitsFake).MoveToOuterDisposeScope();
        }
        return new Stage1GeneratorPass(step, useGan, useLpips, reconTotal.MoveToOuterDisposeScope(), ganLoss, recLoss.item<float>(), lpipsLoss.item<float>());
    }

    /// <summary>∂L_recon/∂W and ∂L_G/∂W of <c>decoder_pred.weight</c> on this shard, flattened one after the other (graph kept).</summary>
    public float[] LastLayerGradients(Stage1GeneratorPass pass)
    {
        ArgumentNullException.ThrowIfNull(pass);
        if (pass.GanLoss is null) throw new InvalidOperationException($"step {pass.Step} does not use the GAN loss, so it has no adaptive weight");
        using var scope = NewDisposeScope();
        var reconstruction = autograd.grad([pass.ReconstructionTotal], [_lastLayer], retain_graph: true)[0];
        var gan = autograd.grad([pass.GanLoss], [_lastLayer], retain_graph: true)[0];
        using var flat = cat([reconstruction.flatten(), gan.flatten()]).cpu();
        return flat.data<float>().ToArray();
    }

    /// <summary>λ = ‖∂L_recon/∂W‖ / (‖∂L_G/∂W‖ + 1e-6) clamped to [0, max_d_weight], from the group's mean last-layer gradients.</summary>
    public double AdaptiveWeightOf(float[] averagedLastLayer)
    {
        ArgumentNullException.ThrowIfNull(averagedLastLayer);
        if (averagedLastLayer.Length != LastLayerGradientLength)
            throw new ArgumentException($"expected {LastLayerGradientLength} last-layer gradients, got {averagedLastLayer.Length}", nameof(averagedLastLayer));
        using var scope = NewDisposeScope();
        var both = tensor(averagedLastLayer).view(2, -1);
        var weight = (both[0].norm() / (both[1].norm() + AdaptiveWeight.Epsilon)).clamp(0.0, Losses.Loss.MaxDWeight);
        return weight.item<float>();
    }

    /// <summary>Back-propagates L_recon + disc_weight·λ·L_G of the pass and returns this shard's decoder gradients (the pass is disposed).</summary>
    public float[] DecoderGradients(Stage1GeneratorPass pass, double adaptiveWeight)
    {
        ArgumentNullException.ThrowIfNull(pass);
        using (pass)
        using (var scope = NewDisposeScope())
        {
            var total = pass.GanLoss is { } gan
                ? pass.ReconstructionTotal + (Losses.Loss.DiscWeight * (float)adaptiveWeight) * gan
                : pass.ReconstructionTotal.alias();
            _decoderGradients.Attach();
            total.backward();
            pass.AdaptiveWeight = pass.GanLoss is null ? 0 : adaptiveWeight;
            pass.TotalLoss = total.item<float>();
            var gradients = _decoderGradients.Publish();
            // The discriminator's parameters got gradients through the GAN loss; its own step starts from none.
            ClearGradients(_decoderParameters);
            ClearGradients(_discriminatorParameters);
            if (!double.IsFinite(pass.TotalLoss) && gradients.Length > 0) gradients[0] = float.NaN;
            return gradients;
        }
    }

    /// <summary>Applies the group's mean decoder gradients: guard, clipping, generator schedule, AdamW, EMA; the step advances.</summary>
    public OptimizerUpdate ApplyDecoder(float[] averaged)
    {
        var step = StepCount;
        var norm = Load(_decoderGradients, averaged, "decoder");
        try
        {
            if (!double.IsFinite(norm)) throw new NonFiniteTrainingException(step + 1, null, norm);
            if (ClipGrad > 0) GradientClipping.ClipGradNorm(_decoderParameters, ClipGrad);
            _generatorSettings.Schedule.Apply(GeneratorOptimizer, step);
            GeneratorOptimizer.step();
        }
        finally
        {
            ClearGradients(_decoderParameters);
        }
        if (EmaDecoder is not null) ExponentialMovingAverage.Update(EmaDecoder, _rae.Decoder, EmaDecay);
        StepCount++;
        return new OptimizerUpdate(norm, _generatorSettings.Schedule.LearningRate(step));
    }

    private Tensor DecodeInPrecision(Tensor latent)
    {
        using var autocast = Autocast.Enter(Precision);
        return _rae.Decode(latent);
    }

    /// <summary>The discriminator's fakes: eval-mode reconstructions of the clean latents, quantised to 8-bit levels in [−1,1].</summary>
    public Tensor Fakes(Tensor cleanLatent)
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        _rae.eval();
        try
        {
            return GanLosses.QuantizeTo8BitLevels(DecodeInPrecision(cleanLatent) * 2.0 - 1.0).MoveToOuterDisposeScope();
        }
        finally
        {
            _rae.train();
        }
    }

    /// <summary>One discriminator update's gradients on this shard: fakes and reals (in [−1,1]) augmented, loss, backward.</summary>
    public Stage1DiscriminatorGradients DiscriminatorGradients(Tensor fakes, Tensor reals, IUniformDraws draws)
    {
        var discriminator = _discriminator ?? throw new InvalidOperationException("this Stage 1 job has no discriminator");
        using var scope = NewDisposeScope();
        discriminator.Module.train();
        try
        {
            ClearGradients(_discriminatorParameters);
            _discriminatorGradients!.Attach();
            var fakeAug = _augment.Apply(fakes, draws);
            var realAug = _augment.Apply(reals, draws);
            var logitsFake = discriminator.Logits(fakeAug);
            var logitsReal = discriminator.Logits(realAug);
            var loss = GanLosses.DiscriminatorLoss(Losses.Loss.DiscLoss, logitsReal, logitsFake);
            loss.backward();
            var gradients = _discriminatorGradients.Publish();
            ClearGradients(_discriminatorParameters);
            var value = (double)loss.item<float>();
            if (!double.IsFinite(value) && gradients.Length > 0) gradients[0] = float.NaN;
            return new Stage1DiscriminatorGradients(gradients, value, logitsReal.detach().mean().item<float>(), logitsFake.detach().mean().item<float>(),
                GanLosses.Accuracy(logitsReal, logitsFake).item<float>());
        }
        finally
        {
            discriminator.Module.eval();
        }
    }

    /// <summary>Applies the group's mean discriminator gradients with the discriminator schedule at its own update count.</summary>
    public OptimizerUpdate ApplyDiscriminator(float[] averaged)
    {
        var optimizer = DiscriminatorOptimizer ?? throw new InvalidOperationException("this Stage 1 job has no discriminator");
        var norm = Load(_discriminatorGradients!, averaged, "discriminator");
        var lrStep = DiscriminatorStepCount;
        try
        {
            if (!double.IsFinite(norm)) throw new NonFiniteTrainingException(StepCount, null, norm);
            _discriminatorSettings!.Schedule.Apply(optimizer, lrStep);
            optimizer.step();
        }
        finally
        {
            ClearGradients(_discriminatorParameters);
        }
        DiscriminatorStepCount++;
        return new OptimizerUpdate(norm, _discriminatorSettings!.Schedule.LearningRate(lrStep));
    }

    /// <summary>Makes <paramref name="flat"/> the parameters' gradients (through their buffer) and returns its global L2 norm.</summary>
    private static double Load(FlatGradientBuffer buffer, float[] flat, string what)
    {
        ArgumentNullException.ThrowIfNull(flat);
        if (flat.Length != buffer.Length) throw new ArgumentException($"{what} update has {flat.Length} gradients for {buffer.Length} parameters", nameof(flat));
        buffer.Load(flat);
        using var norm = linalg.vector_norm(buffer.Flat, 2);
        return norm.item<float>();
    }

    private static void ClearGradients(IEnumerable<Parameter> parameters)
    {
        foreach (var parameter in parameters) parameter.grad = null;
    }

    public void Dispose()
    {
        GeneratorOptimizer.Dispose();
        DiscriminatorOptimizer?.Dispose();
        _decoderGradients.Dispose();
        _discriminatorGradients?.Dispose();
    }
}
