namespace RAE.Models.Training;

public enum DecayShape
{
    Linear,
    Cosine,
}

/// <summary>
/// The per-optimizer-step LambdaLR of rae-spec §4.8: lr(k) = base_lr·f(k) with W warm-up steps, decay ending at step D
/// and r = final_lr/base_lr: k &lt; W → (k+1)/W if warmup_from_zero else 1; k ≥ D → r; otherwise linear
/// 1 − (1−r)·(k−W)/(D−W) or cosine r + (1−r)·½(1 + cos(π·(k−W)/(D−W))).
/// </summary>
public sealed class LearningRateSchedule
{
    public LearningRateSchedule(double baseLr, double finalLr, long warmupSteps, long decayEndSteps, DecayShape shape, bool warmupFromZero)
    {
        if (!(baseLr > 0) || !double.IsFinite(baseLr)) throw new ArgumentOutOfRangeException(nameof(baseLr), baseLr, "base_lr must be a finite number > 0");
        if (!(finalLr >= 0) || !double.IsFinite(finalLr)) throw new ArgumentOutOfRangeException(nameof(finalLr), finalLr, "final_lr must be a finite number >= 0");
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "warmup steps must be >= 0");
        if (decayEndSteps < warmupSteps)
            throw new ArgumentOutOfRangeException(nameof(decayEndSteps), decayEndSteps, $"decay end ({decayEndSteps} steps) must not come before the end of warm-up ({warmupSteps} steps)");
        BaseLr = baseLr;
        FinalLr = finalLr;
        WarmupSteps = warmupSteps;
        DecayEndSteps = decayEndSteps;
        Shape = shape;
        WarmupFromZero = warmupFromZero;
    }

    public double BaseLr { get; }

    public double FinalLr { get; }

    public long WarmupSteps { get; }

    public long DecayEndSteps { get; }

    public DecayShape Shape { get; }

    public bool WarmupFromZero { get; }

    /// <summary>Epoch-specified schedule: W = warmup_epochs·steps_per_epoch, D = decay_end_epoch·steps_per_epoch.</summary>
    public static LearningRateSchedule FromEpochs(double baseLr, double finalLr, double warmupEpochs, double decayEndEpoch, long stepsPerEpoch, DecayShape shape, bool warmupFromZero)
    {
        if (stepsPerEpoch <= 0) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), stepsPerEpoch, "steps_per_epoch must be > 0");
        if (warmupEpochs < 0 || decayEndEpoch < 0) throw new ArgumentException($"warmup_epochs ({warmupEpochs}) and decay_end_epoch ({decayEndEpoch}) must be >= 0");
        return new LearningRateSchedule(baseLr, finalLr, (long)(warmupEpochs * stepsPerEpoch), (long)(decayEndEpoch * stepsPerEpoch), shape, warmupFromZero);
    }

    public static DecayShape ParseShape(string name) => name switch
    {
        "linear" => DecayShape.Linear,
        "cosine" => DecayShape.Cosine,
        _ => throw new ArgumentException($"unknown scheduler type '{name}': expected 'linear' or 'cosine'"),
    };

    /// <summary>The LambdaLR multiplier f(k) for optimizer step k (0-based).</summary>
    public double Factor(long step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "step must be >= 0");
        if (step < WarmupSteps) return WarmupFromZero ? (step + 1.0) / WarmupSteps : 1.0;
        var ratio = FinalLr / BaseLr;
        if (step >= DecayEndSteps) return ratio;
        var progress = (double)(step - WarmupSteps) / (DecayEndSteps - WarmupSteps);
        return Shape == DecayShape.Linear
            ? 1 - (1 - ratio) * progress
            : ratio + (1 - ratio) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    public double LearningRate(long step) => BaseLr * Factor(step);

    /// <summary>Sets every parameter group's learning rate for step k (call before optimizer.step()).</summary>
    public void Apply(TorchSharp.torch.optim.Optimizer optimizer, long step)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var lr = LearningRate(step);
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
    }
}
