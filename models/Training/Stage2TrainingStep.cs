using RAE.Configuration;
using RAE.Models.Nn;
using RAE.Models.Transport;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>What one optimizer step reports (train/loss, the pre-clip gradient norm, train/lr).</summary>
public sealed record TrainingStepResult(long Step, double Loss, double GradientNorm, double LearningRate);

/// <summary>What <see cref="Stage2TrainingStep.Update"/> reports: the pre-clip global gradient norm and the learning rate used.</summary>
public readonly record struct OptimizerUpdate(double GradientNorm, double LearningRate);

/// <summary>
/// Called between backward and clipping with the trainable parameters, whose <c>.grad</c> hold this process's gradients;
/// it must leave in them the gradients every replica applies (a data-parallel mean all-reduce, or nothing for one process).
/// </summary>
public delegate void GradientSynchronisation(IReadOnlyList<Parameter> trainable);

/// <summary>
/// The one Stage-2 optimizer step (rae-spec §7.2, src/train.py): zero the gradients, backward of the loss (accumulated
/// over micro-batches with <see cref="Accumulate"/>), the gradient synchronisation hook, clipping of the total gradient norm
/// (when clip_grad is set), the scheduled learning rate of this step (LambdaLR), AdamW, then
/// p_ema ← d·p_ema + (1 − d)·p. <see cref="Run"/> does it all for one batch; a data-parallel rank calls the phases itself,
/// with its collective between <see cref="Accumulate"/> and <see cref="Update"/>.
/// The caller chooses the module mode (train.py calls model.train() once; train mode enables label dropout). With
/// <see cref="ComputePrecision.BFloat16"/> the forward pass runs under <see cref="Autocast"/> (train.py's autocast): bf16
/// matmuls and attention on fp32 parameters; loss, gradients, clipping, AdamW and EMA stay fp32, with no loss scaling.
/// </summary>
public sealed class Stage2TrainingStep : IDisposable
{
    private readonly nn.Module _model;
    private readonly Parameter[] _trainable;

    /// <param name="clipGrad">clip_grad; null or ≤ 0 measures the norm without clipping.</param>
    public Stage2TrainingStep(nn.Module model, FlowTransport transport, LearningRateSchedule schedule,
        double? clipGrad = 1.0, nn.Module? ema = null, double emaDecay = 0.9995, double beta1 = 0.9, double beta2 = 0.95,
        double weightDecay = 0.0, double eps = 1e-8, ComputePrecision precision = ComputePrecision.Float32)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        Transport = transport ?? throw new ArgumentNullException(nameof(transport));
        Schedule = schedule ?? throw new ArgumentNullException(nameof(schedule));
        if (!(emaDecay >= 0 && emaDecay <= 1)) throw new ArgumentOutOfRangeException(nameof(emaDecay), emaDecay, "ema_decay must lie in [0, 1]");
        ClipGrad = clipGrad is > 0 ? clipGrad : null;
        Precision = precision;
        Ema = ema;
        EmaDecay = emaDecay;
        _trainable = model.parameters().Where(p => p.requires_grad).ToArray();
        Optimizer = TrainingOptimizer.CreateAdamW(_trainable, schedule.LearningRate(0), beta1, beta2, weightDecay, eps);
    }

    public FlowTransport Transport { get; }

    public LearningRateSchedule Schedule { get; }

    /// <summary>The max total gradient norm; null when gradients are not clipped.</summary>
    public double? ClipGrad { get; }

    public ComputePrecision Precision { get; }

    public nn.Module? Ema { get; }

    public double EmaDecay { get; }

    public AdamW Optimizer { get; }

    public IReadOnlyList<Parameter> Trainable => _trainable;

    /// <summary>Optimizer steps taken so far (the scheduler's step counter); set when a saved state is restored.</summary>
    public long StepCount { get; set; }

    /// <summary>One whole step on latents x1 with labels; x0/t/generator as in <see cref="FlowTransport.TrainingLosses(ConditionalModelFunction, Tensor, Tensor, Tensor?, Tensor?, Generator?)"/>.</summary>
    public TrainingStepResult Run(ConditionalModelFunction forward, Tensor x1, Tensor labels, Tensor? x0 = null, Tensor? t = null,
        Generator? generator = null, GradientSynchronisation? synchronise = null)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ZeroGradients();
        double loss;
        using (var scope = NewDisposeScope())
        using (var autocast = Autocast.Enter(Precision))
        using (var losses = Transport.TrainingLosses(forward, x1, labels, x0, t, generator))
        {
            var mean = losses.Loss.to(float32).mean();
            mean.backward();
            loss = mean.item<float>();
        }
        var step = StepCount;
        var update = Update(synchronise, loss);
        return new TrainingStepResult(step, loss, update.GradientNorm, update.LearningRate);
    }

    public void ZeroGradients()
    {
        foreach (var parameter in _trainable) parameter.grad = null;
    }

    /// <summary>
    /// Adds the gradients of sum(per-sample loss) / <paramref name="lossDivisor"/> for one micro-batch (the velocity model,
    /// latents x1, noise x0 and times t given) and returns the sum of the per-sample losses.
    /// </summary>
    public double Accumulate(ModelFunction model, Tensor x1, Tensor x0, Tensor t, double lossDivisor)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!(lossDivisor > 0)) throw new ArgumentOutOfRangeException(nameof(lossDivisor), lossDivisor, "the loss divisor must be positive");
        using var scope = NewDisposeScope();
        using var autocast = Autocast.Enter(Precision);
        using var result = Transport.TrainingLosses(model, x1, x0, t);
        var sum = result.Loss.to(float32).sum();
        sum.div(lossDivisor).backward();
        return sum.item<float>();
    }

    /// <summary>
    /// The update after backward: <paramref name="synchronise"/> (the gradients every replica applies), the non-finite
    /// guard, clipping, the learning rate of step <see cref="StepCount"/>, AdamW, EMA; gradients are released and
    /// <see cref="StepCount"/> advances. A NaN/Inf global gradient norm (or <paramref name="loss"/>, when given) throws
    /// <see cref="NonFiniteTrainingException"/> before clipping: the gradients are released and nothing else changes.
    /// </summary>
    /// <param name="loss">A loss every replica shares (checked with the gradient norm); a rank's local loss does not
    /// qualify, since replicas that disagree on skipping would diverge.</param>
    public OptimizerUpdate Update(GradientSynchronisation? synchronise = null, double? loss = null)
    {
        synchronise?.Invoke(_trainable);
        double norm;
        using (var scope = NewDisposeScope())
        {
            // One pass over the gradients measures the norm for the guard, the report and the clipping.
            var gradients = GradientClipping.Gradients(_trainable);
            var totalNorm = gradients.Count == 0 ? null : GradientClipping.TotalNorm(gradients);
            norm = totalNorm is null ? 0 : totalNorm.item<float>();
            if (!double.IsFinite(norm) || loss is { } value && !double.IsFinite(value))
            {
                ZeroGradients();
                throw new NonFiniteTrainingException(StepCount + 1, loss, norm);
            }
            if (ClipGrad is { } maxNorm && totalNorm is not null) GradientClipping.ScaleToMaxNorm(gradients, totalNorm, maxNorm);
        }
        var step = StepCount;
        Schedule.Apply(Optimizer, step);
        Optimizer.step();
        if (Ema is not null) ExponentialMovingAverage.Update(Ema, _model, EmaDecay);
        ZeroGradients();
        StepCount++;
        return new OptimizerUpdate(norm, Schedule.LearningRate(step));
    }

    public void Dispose() => Optimizer.Dispose();
}
