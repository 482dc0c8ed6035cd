using RAE.Models.Stage1;
using RAE.Models.Stage1.Losses;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>A Stage 1 discriminator as the step needs it: its trainable module and its logits for images in [−1,1].</summary>
public sealed record Stage1Discriminator(nn.Module Module, Func<Tensor, Tensor> Logits);

/// <summary>Optimizer settings of one of the two AdamW optimizers (the reference's <c>optimizer</c> / <c>gan.disc.optimizer</c>).</summary>
public sealed record Stage1OptimizerSettings(LearningRateSchedule Schedule, double Beta1 = 0.9, double Beta2 = 0.95, double WeightDecay = 0.0);

/// <summary>What one Stage 1 iteration reports (the reference's logged values); discriminator values are null when it did not train.</summary>
public sealed record Stage1StepResult(
    long Step, bool UsedGan, bool UsedLpips, bool TrainedDiscriminator,
    double TotalLoss, double ReconstructionLoss, double LpipsLoss, double GanLoss, double AdaptiveWeight, double GeneratorLearningRate,
    double? DiscriminatorLoss, double? LogitsReal, double? LogitsFake, double? DiscriminatorAccuracy, double? DiscriminatorLearningRate);

/// <summary>
/// One Stage 1 training iteration of src/train_stage1.py (spec §4.4): the decoder (generator) step with L1, the perceptual
/// loss (LPIPS as the reference, or the offline ResNet18 one, through <see cref="IPerceptualLoss"/>; its value is reported
/// as <c>LpipsLoss</c>, the reference's log name, whichever it is) and the
/// adaptively weighted GAN loss, then, from <c>disc_upd_start</c>, <c>disc_updates</c> discriminator steps on 8-bit quantised
/// eval-mode reconstructions. Two AdamW optimizers with their own schedules; the EMA covers every RAE parameter.
/// Reference quirk kept on purpose (§13.12): the discriminator schedule is indexed by the number of discriminator updates
/// made so far, not by the global step, so its warmup starts at <c>disc_upd_start</c> and it never reaches its final LR.
/// </summary>
public sealed class Stage1TrainingStep : IDisposable
{
    private const string LastLayerName = "decoder_pred.weight";

    private readonly RepresentationAutoencoder _rae;
    private readonly IPerceptualLoss? _perceptual;
    private readonly Stage1Discriminator? _discriminator;
    private readonly DiffAug _augment;
    private readonly IUniformDraws _draws;
    private readonly List<Parameter> _decoderParameters;
    private readonly List<Parameter> _discriminatorParameters;
    private readonly Parameter _lastLayer;
    private readonly Stage1OptimizerSettings _generatorSettings;
    private readonly Stage1OptimizerSettings? _discriminatorSettings;

    public Stage1TrainingStep(RepresentationAutoencoder rae, Stage1LossSchedule losses, Stage1OptimizerSettings generator, DiffAug augment,
        IUniformDraws augmentDraws, IPerceptualLoss? perceptual = null, Stage1Discriminator? discriminator = null, Stage1OptimizerSettings? discriminatorOptimizer = null,
        nn.Module? ema = null, double emaDecay = 0.9978, double clipGrad = 0.0)
    {
        _rae = rae ?? throw new ArgumentNullException(nameof(rae));
        Losses = losses ?? throw new ArgumentNullException(nameof(losses));
        _generatorSettings = generator ?? throw new ArgumentNullException(nameof(generator));
        _augment = augment ?? throw new ArgumentNullException(nameof(augment));
        _draws = augmentDraws ?? throw new ArgumentNullException(nameof(augmentDraws));
        Stage1StepArguments.Check(losses, perceptual, discriminator, discriminatorOptimizer, emaDecay, clipGrad);
        _perceptual = perceptual;
        _discriminator = discriminator;
        _discriminatorSettings = discriminatorOptimizer;
        Ema = ema;
        EmaDecay = emaDecay;
        ClipGrad = clipGrad;

        // The reference makes the whole decoder trainable, decoder_pos_embed included (§13.5).
        _decoderParameters = rae.Decoder.parameters().ToList();
        foreach (var parameter in _decoderParameters) parameter.requires_grad = true;
        _lastLayer = rae.Decoder.named_parameters().SingleOrDefault(p => p.name == LastLayerName).parameter
            ?? throw new ArgumentException($"the decoder has no '{LastLayerName}', which the adaptive weight needs", nameof(rae));
        GeneratorOptimizer = TrainingOptimizer.CreateAdamW(_decoderParameters, generator.Schedule.LearningRate(0), generator.Beta1, generator.Beta2, generator.WeightDecay);
        _discriminatorParameters = discriminator?.Module.parameters().Where(p => p.requires_grad).ToList() ?? [];
        if (discriminator is not null && discriminatorOptimizer is not null)
        {
            if (_discriminatorParameters.Count == 0) throw new ArgumentException("the discriminator has no trainable parameter", nameof(discriminator));
            DiscriminatorOptimizer = TrainingOptimizer.CreateAdamW(_discriminatorParameters, discriminatorOptimizer.Schedule.LearningRate(0),
                discriminatorOptimizer.Beta1, discriminatorOptimizer.Beta2, discriminatorOptimizer.WeightDecay);
        }
    }

    public Stage1LossSchedule Losses { get; }

    public AdamW GeneratorOptimizer { get; }

    public AdamW? DiscriminatorOptimizer { get; }

    public nn.Module? Ema { get; }

    public double EmaDecay { get; }

    public double ClipGrad { get; }

    /// <summary>Generator steps taken so far: the global step g and the generator schedule's index.</summary>
    public long StepCount { get; set; }

    /// <summary>Discriminator updates made so far: the discriminator schedule's index (the reference quirk).</summary>
    public long DiscriminatorStepCount { get; set; }

    /// <summary>Runs one iteration on images [B,3,H,W] in [0,1]; <paramref name="noise"/> draws the latent noise of the train-mode encode.</summary>
    public Stage1StepResult Run(Tensor images, Generator? noise = null)
    {
        if (images.dim() != 4 || images.shape[1] != 3) throw new ArgumentException($"Stage 1 expects images [B,3,H,W], got [{string.Join(",", images.shape)}]");
        var step = StepCount;
        var useGan = Losses.UseGan(step);
        var useLpips = Losses.UseLpips(step);
        var trainDisc = Losses.TrainDiscriminator(step);
        var generator = GeneratorStep(images, noise, step, useGan, useLpips);
        StepCount++;
        if (!trainDisc) return generator;
        var (loss, real, fake, accuracy, lr) = DiscriminatorSteps(images);
        return generator with
        {
            TrainedDiscriminator = true, DiscriminatorLoss = loss, LogitsReal = real, LogitsFake = fake, DiscriminatorAccuracy = accuracy,
            DiscriminatorLearningRate = lr,
        };
    }

    private Stage1StepResult GeneratorStep(Tensor images, Generator? noise, long step, bool useGan, bool useLpips)
    {
        using var scope = NewDisposeScope();
        var loss = Losses.Loss;
        _rae.train();
        _discriminator?.Module.eval();
        GeneratorOptimizer.zero_grad();

        using (var latent = _rae.Encode(images, noise))
        {
            var recon = _rae.Decode(latent);
            var recLoss = (recon - images).abs().mean();
            var lpipsLoss = useLpips ? _perceptual!.Loss(images * 2.0 - 1.0, recon * 2.0 - 1.0) : zeros([], dtype: recLoss.dtype, device: recLoss.device);
            var reconTotal = recLoss + loss.PerceptualWeight * lpipsLoss;
            var total = reconTotal;
            double ganValue = 0, weightValue = 0;
            if (useGan)
            {
                var logitsFake = _discriminator!.Logits(_augment.Apply(recon * 2.0 - 1.0, _draws));
                var ganLoss = GanLosses.GeneratorLoss(loss.GenLoss, logitsFake);
                using var adaptive = AdaptiveWeight.Compute(reconTotal, ganLoss, _lastLayer, loss.MaxDWeight);
                total = reconTotal + (loss.DiscWeight * adaptive.Weight) * ganLoss;
                ganValue = ganLoss.item<float>();
                weightValue = adaptive.Weight.item<float>();
            }
            total.backward();
            if (ClipGrad > 0) GradientClipping.ClipGradNorm(_decoderParameters, ClipGrad);
            _generatorSettings.Schedule.Apply(GeneratorOptimizer, step);
            GeneratorOptimizer.step();
            if (Ema is not null) ExponentialMovingAverage.Update(Ema, _rae, EmaDecay);
            // The discriminator's parameters got gradients through the GAN loss; its own step starts from none.
            foreach (var parameter in _discriminatorParameters) parameter.grad = null;
            return new Stage1StepResult(step, useGan, useLpips, TrainedDiscriminator: false,
                total.item<float>(), recLoss.item<float>(), lpipsLoss.item<float>(), ganValue, weightValue, _generatorSettings.Schedule.LearningRate(step),
                null, null, null, null, null);
        }
    }

    private (double Loss, double LogitsReal, double LogitsFake, double Accuracy, double LearningRate) DiscriminatorSteps(Tensor images)
    {
        using var scope = NewDisposeScope();
        var discriminator = _discriminator!;
        var optimizer = DiscriminatorOptimizer!;
        Tensor fake;
        _rae.eval();
        using (no_grad())
        using (var latent = _rae.Encode(images))
            fake = GanLosses.QuantizeTo8BitLevels(_rae.Decode(latent) * 2.0 - 1.0);
        var real = images * 2.0 - 1.0;
        discriminator.Module.train();
        (double, double, double, double, double) last = default;
        try
        {
            for (var update = 0; update < Losses.Loss.DiscUpdates; update++)
            {
                using var updateScope = NewDisposeScope();
                var fakeAug = _augment.Apply(fake, _draws);
                var realAug = _augment.Apply(real, _draws);
                optimizer.zero_grad();
                var logitsFake = discriminator.Logits(fakeAug);
                var logitsReal = discriminator.Logits(realAug);
                var loss = GanLosses.DiscriminatorLoss(Losses.Loss.DiscLoss, logitsReal, logitsFake);
                loss.backward();
                var lrStep = DiscriminatorStepCount;
                _discriminatorSettings!.Schedule.Apply(optimizer, lrStep);
                optimizer.step();
                DiscriminatorStepCount++;
                last = (loss.item<float>(), logitsReal.detach().mean().item<float>(), logitsFake.detach().mean().item<float>(),
                    GanLosses.Accuracy(logitsReal, logitsFake).item<float>(), _discriminatorSettings.Schedule.LearningRate(lrStep));
            }
        }
        finally
        {
            discriminator.Module.eval();
            _rae.train();
        }
        return last;
    }

    public void Dispose()
    {
        GeneratorOptimizer.Dispose();
        DiscriminatorOptimizer?.Dispose();
    }
}
