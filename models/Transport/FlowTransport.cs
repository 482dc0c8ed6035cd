using static TorchSharp.torch;

namespace RAE.Models.Transport;

/// <summary>A network evaluated at (x [B,...], t [B]); labels and other keyword arguments are closed over.</summary>
public delegate Tensor ModelFunction(Tensor x, Tensor t);

/// <summary>A class-conditional network evaluated at (x, t, y) like DiT^DH's forward.</summary>
public delegate Tensor ConditionalModelFunction(Tensor x, Tensor t, Tensor y);

/// <summary>What the network predicts (reference ModelType).</summary>
public enum Prediction
{
    Velocity,
    Noise,
    Score,
}

/// <summary>Loss weighting for noise/score predictions (reference WeightType).</summary>
public enum LossWeight
{
    None,
    Velocity,
    Likelihood,
}

/// <summary>One training-loss evaluation: the per-sample loss and everything it was computed from.</summary>
public sealed record TrainingLossResult(Tensor Loss, Tensor Prediction, Tensor T, Tensor X0, Tensor Xt, Tensor Ut) : IDisposable
{
    public void Dispose()
    {
        Loss.Dispose();
        Prediction.Dispose();
        T.Dispose();
        X0.Dispose();
        Xt.Dispose();
        Ut.Dispose();
    }
}

/// <summary>
/// The flow-matching transport of rae-spec §6 (src/stage2/transport): path, prediction type, loss weighting, eps
/// defaults, the time distribution with its shift, the training loss and the model → drift/score conversions that the
/// ODE and SDE samplers use.
/// </summary>
public sealed class FlowTransport
{
    public FlowTransport(PathType pathType, Prediction prediction, LossWeight lossWeight, double trainEps, double sampleEps, TimeDistribution timeDistribution)
    {
        if (!(trainEps >= 0 && trainEps < 0.5)) throw new ArgumentOutOfRangeException(nameof(trainEps), trainEps, "train_eps must be in [0, 0.5)");
        if (!(sampleEps >= 0 && sampleEps < 0.5)) throw new ArgumentOutOfRangeException(nameof(sampleEps), sampleEps, "sample_eps must be in [0, 0.5)");
        PathType = pathType;
        Path = InterpolationPath.Create(pathType);
        Prediction = prediction;
        LossWeight = lossWeight;
        TrainEps = trainEps;
        SampleEps = sampleEps;
        TimeDistribution = timeDistribution ?? throw new ArgumentNullException(nameof(timeDistribution));
    }

    public PathType PathType { get; }

    public InterpolationPath Path { get; }

    public Prediction Prediction { get; }

    public LossWeight LossWeight { get; }

    public double TrainEps { get; }

    public double SampleEps { get; }

    public TimeDistribution TimeDistribution { get; }

    /// <summary>The shift factor s shared by training times and the sampling grid.</summary>
    public double Shift => TimeDistribution.Shift;

    /// <summary>
    /// The reference factory create_transport: prediction 'noise'/'score' else velocity; loss_weight
    /// 'velocity'/'likelihood' else none; path 'Linear'/'GVP'/'VP'; eps defaults: VP 1e-5 / 1e-3, Linear/GVP with a
    /// non-velocity prediction 1e-3 / 1e-3, Linear/GVP velocity 0 / 0; time_dist_shift ≥ 1.
    /// </summary>
    /// <summary>The transport a configuration describes: its <c>transport</c> section and the time shift of <c>misc</c>.</summary>
    public static FlowTransport FromConfig(RAE.Configuration.RaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var transport = config.Transport;
        return Create(transport.PathType, transport.Prediction, transport.LossWeight, transport.TrainEps, transport.SampleEps,
            transport.TimeDistribution.Name, config.TimeDistShift);
    }

    public static FlowTransport Create(
        string pathType = "Linear",
        string prediction = "velocity",
        string? lossWeight = null,
        double? trainEps = null,
        double? sampleEps = null,
        string timeDistType = "uniform",
        double timeDistShift = 1.0)
    {
        var parsedPrediction = prediction switch
        {
            "noise" => Prediction.Noise,
            "score" => Prediction.Score,
            _ => Prediction.Velocity,
        };
        var parsedWeight = lossWeight switch
        {
            "velocity" => LossWeight.Velocity,
            "likelihood" => LossWeight.Likelihood,
            _ => LossWeight.None,
        };
        var parsedPath = pathType switch
        {
            "Linear" => PathType.Linear,
            "GVP" => PathType.Gvp,
            "VP" => PathType.Vp,
            _ => throw new ArgumentException($"unknown path_type '{pathType}': expected 'Linear', 'GVP' or 'VP'", nameof(pathType)),
        };
        double train, sample;
        if (parsedPath == PathType.Vp)
        {
            train = trainEps ?? 1e-5;
            sample = sampleEps ?? 1e-3;
        }
        else if (parsedPrediction != Prediction.Velocity)
        {
            train = trainEps ?? 1e-3;
            sample = sampleEps ?? 1e-3;
        }
        else
        {
            train = trainEps ?? 0;
            sample = sampleEps ?? 0;
        }
        return new FlowTransport(parsedPath, parsedPrediction, parsedWeight, train, sample, TimeDistribution.Parse(timeDistType, timeDistShift));
    }

    /// <summary>
    /// The reference check_interval, in its own time variable (training uses it directly; samplers integrate over
    /// 1 − linspace(t0, t1)). Linear/GVP with velocity and no SDE: (0, 1 − 1/1000).
    /// </summary>
    public (double T0, double T1) CheckInterval(bool sde = false, bool eval = false, string diffusionForm = "SBDM", double lastStepSize = 0.0)
    {
        double t0 = 0, t1 = 1;
        var eps = eval ? SampleEps : TrainEps;
        if (PathType == PathType.Vp)
        {
            t1 = !sde || lastStepSize == 0 ? 1 - eps : 1 - lastStepSize;
        }
        else if (Prediction != Prediction.Velocity || sde)
        {
            t0 = (diffusionForm == "SBDM" && sde) || Prediction != Prediction.Velocity ? eps : 0;
            t1 = !sde || lastStepSize == 0 ? 1 - eps : 1 - lastStepSize;
        }
        else
        {
            t1 = 1 - 1.0 / 1000;
        }
        return (t0, t1);
    }

    /// <summary>Training times from recorded uniform draws u [B] (reproducible).</summary>
    public Tensor SampleTime(Tensor u)
    {
        var (t0, t1) = CheckInterval();
        return TimeDistribution.FromUniform(u, t0, t1);
    }

    /// <summary>Training times drawn with torch.rand on the CPU (optionally from a seeded generator).</summary>
    public Tensor SampleTime(long batch, Generator? generator = null, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var (t0, t1) = CheckInterval();
        return TimeDistribution.Sample(batch, t0, t1, generator, device, dtype);
    }

    /// <summary>
    /// training_losses: x0 ~ N(0, I) (or given), t from the time distribution (or given), x_t and u_t from the path,
    /// per-sample loss = mean over all non-batch dimensions. Velocity: (out − u_t)²; noise: w·(out − x0)²;
    /// score: w·(out·σ_t + x0)², with w = 1, (D/σ_t)² or |D|/σ_t² for none/velocity/likelihood weighting
    /// (D = the path's score coefficient; the reference's likelihood weight is negative in its reversed-time
    /// convention, we use its magnitude).
    /// </summary>
    public TrainingLossResult TrainingLosses(ModelFunction model, Tensor x1, Tensor? x0 = null, Tensor? t = null, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (x0 is not null && !x0.shape.SequenceEqual(x1.shape))
            throw new ArgumentException($"x0 shape [{string.Join(",", x0.shape)}] differs from x1 shape [{string.Join(",", x1.shape)}]");
        using var scope = NewDisposeScope();
        var noise = x0?.alias() ?? randn(x1.shape, dtype: x1.dtype, device: x1.device, generator: generator);
        var time = t?.to(x1.dtype, x1.device).alias() ?? SampleTime(x1.shape[0], generator, x1.device, x1.dtype);
        if (time.dim() != 1 || time.shape[0] != x1.shape[0])
            throw new ArgumentException($"t must have shape [{x1.shape[0]}], got [{string.Join(",", time.shape)}]");
        var (xt, ut) = Path.Plan(time, noise, x1);
        var output = model(xt, time);
        if (!output.shape.SequenceEqual(xt.shape))
            throw new InvalidOperationException($"the model returned shape [{string.Join(",", output.shape)}], expected [{string.Join(",", xt.shape)}]");
        var reduceDims = Enumerable.Range(1, (int)x1.dim() - 1).Select(d => (long)d).ToArray();
        Tensor loss;
        if (Prediction == Prediction.Velocity)
        {
            loss = (output - ut).square().mean(reduceDims);
        }
        else
        {
            var te = InterpolationPath.ExpandLike(time, xt);
            var (_, coefficient) = Path.ComputeDrift(xt, time);
            var (sigma, _) = Path.ComputeSigma(te);
            Tensor weight = LossWeight switch
            {
                LossWeight.Velocity => (coefficient / sigma).square(),
                LossWeight.Likelihood => coefficient.abs() / sigma.square(),
                _ => ones_like(sigma),
            };
            var error = Prediction == Prediction.Noise ? (output - noise).square() : (output * sigma + noise).square();
            loss = (weight * error).mean(reduceDims);
        }
        return new TrainingLossResult(
            loss.MoveToOuterDisposeScope(), output.MoveToOuterDisposeScope(), time.MoveToOuterDisposeScope(),
            noise.MoveToOuterDisposeScope(), xt.MoveToOuterDisposeScope(), ut.MoveToOuterDisposeScope());
    }

    /// <summary>Training loss of a class-conditional network (labels y [B]).</summary>
    public TrainingLossResult TrainingLosses(ConditionalModelFunction model, Tensor x1, Tensor labels, Tensor? x0 = null, Tensor? t = null, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return TrainingLosses((x, time) => model(x, time, labels), x1, x0, t, generator);
    }

    /// <summary>The probability-flow drift dx/dt at (x, t) from the network output: the raw output for velocity.</summary>
    public Tensor Drift(ModelFunction model, Tensor x, Tensor t)
    {
        var output = model(x, t);
        if (Prediction == Prediction.Velocity) return output;
        using var scope = NewDisposeScope();
        var score = Prediction == Prediction.Score ? output : Path.ScoreFromNoise(output, x, t);
        var (driftMean, coefficient) = Path.ComputeDrift(x, t);
        var drift = driftMean + coefficient * score;
        output.Dispose();
        return drift.MoveToOuterDisposeScope();
    }

    /// <summary>Drift and score at (x, t) from a single network evaluation (used by the SDE sampler).</summary>
    public (Tensor Drift, Tensor Score) DriftAndScore(ModelFunction model, Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var output = model(x, t);
        Tensor drift, score;
        switch (Prediction)
        {
            case Prediction.Velocity:
                drift = output;
                score = Path.ScoreFromVelocity(output, x, t);
                break;
            default:
                score = Prediction == Prediction.Score ? output : Path.ScoreFromNoise(output, x, t);
                var (driftMean, coefficient) = Path.ComputeDrift(x, t);
                drift = driftMean + coefficient * score;
                break;
        }
        return (drift.MoveToOuterDisposeScope(), score.MoveToOuterDisposeScope());
    }
}
