using RAE.Models.Nn;
using RAE.Models.Transport;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>What one optimizer step reports (train/loss, the pre-clip gradient norm, train/lr).</summary>
public sealed record TrainingStepResult(long Step, double Loss, double GradientNorm, double LearningRate);

/// <summary>
/// One Stage-2 optimizer step as src/train.py does it with grad_accum_steps = 1 (rae-spec §7.2): zero the gradients,
/// loss = training_losses(model, x1, {y}).mean(), backward, clip the total gradient norm, set the scheduled learning
/// rate for this step, AdamW step, then p_ema ← d·p_ema + (1 − d)·p over all named parameters.
/// The caller chooses the module mode (train.py calls model.train() once; train mode enables label dropout). With
/// <see cref="ComputePrecision.BFloat16"/> the forward pass runs under <see cref="Autocast"/> (train.py's autocast): bf16
/// matmuls and attention on fp32 parameters; loss, gradients, clipping, AdamW and EMA stay fp32, with no loss scaling.
/// </summary>
public sealed class Stage2TrainingStep : IDisposable
{
    private readonly nn.Module _model;
    private readonly ConditionalModelFunction _forward;
    private readonly List<Parameter> _trainable;

    public Stage2TrainingStep(nn.Module model, ConditionalModelFunction forward, FlowTransport transport, LearningRateSchedule schedule,
        double clipGrad = 1.0, nn.Module? ema = null, double emaDecay = 0.9995, double beta1 = 0.9, double beta2 = 0.95, double weightDecay = 0.0,
        ComputePrecision precision = ComputePrecision.Float32)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _forward = forward ?? throw new ArgumentNullException(nameof(forward));
        Transport = transport ?? throw new ArgumentNullException(nameof(transport));
        Schedule = schedule ?? throw new ArgumentNullException(nameof(schedule));
        if (!(clipGrad > 0)) throw new ArgumentOutOfRangeException(nameof(clipGrad), clipGrad, "clip_grad must be > 0");
        if (!(emaDecay >= 0 && emaDecay <= 1)) throw new ArgumentOutOfRangeException(nameof(emaDecay), emaDecay, "ema_decay must lie in [0, 1]");
        ClipGrad = clipGrad;
        Precision = precision;
        Ema = ema;
        EmaDecay = emaDecay;
        _trainable = model.parameters().Where(p => p.requires_grad).ToList();
        Optimizer = TrainingOptimizer.CreateAdamW(_trainable, schedule.LearningRate(0), beta1, beta2, weightDecay);
    }

    public FlowTransport Transport { get; }

    public LearningRateSchedule Schedule { get; }

    public double ClipGrad { get; }

    public ComputePrecision Precision { get; }

    public nn.Module? Ema { get; }

    public double EmaDecay { get; }

    public AdamW Optimizer { get; }

    /// <summary>Optimizer steps taken so far (the scheduler's step counter).</summary>
    public long StepCount { get; private set; }

    /// <summary>Runs one step on latents x1 with labels; x0/t/generator as in <see cref="FlowTransport.TrainingLosses(ModelFunction, Tensor, Tensor?, Tensor?, Generator?)"/>.</summary>
    public TrainingStepResult Run(Tensor x1, Tensor labels, Tensor? x0 = null, Tensor? t = null, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        Optimizer.zero_grad();
        double loss;
        using (var autocast = Autocast.Enter(Precision))
        using (var losses = Transport.TrainingLosses(_forward, x1, labels, x0, t, generator))
        using (var mean = losses.Loss.to(float32).mean())
        {
            mean.backward();
            loss = mean.item<float>();
        }
        var norm = GradientClipping.ClipGradNorm(_trainable, ClipGrad);
        var step = StepCount;
        Schedule.Apply(Optimizer, step);
        Optimizer.step();
        if (Ema is not null) ExponentialMovingAverage.Update(Ema, _model, EmaDecay);
        StepCount++;
        return new TrainingStepResult(step, loss, norm, Schedule.LearningRate(step));
    }

    public void Dispose() => Optimizer.Dispose();
}
