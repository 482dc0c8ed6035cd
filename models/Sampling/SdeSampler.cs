using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Sampling;

public enum SdeMethod
{
    /// <summary>Euler–Maruyama.</summary>
    Euler,
    /// <summary>Stochastic Heun (predictor–corrector for additive noise).</summary>
    Heun,
}

public enum DiffusionForm
{
    Constant,
    Sbdm,
    Sigma,
    Linear,
    Decreasing,
    IncreasingDecreasing,
}

public enum LastStep
{
    None,
    Mean,
    Euler,
    Tweedie,
}

/// <summary>
/// A mathematically consistent version of the reference's sample_sde (rae-spec §6.6) in the reversed-time convention
/// (τ = 1 noise → τ = 0 data). Going down in τ, dx = −(v − D(τ)·score)·dτ + sqrt(2·D(τ))·dW̄ has the marginals of
/// the probability-flow ODE for any D ≥ 0, so every diffusion form here is non-negative: constant (norm), SBDM
/// (norm·(σ·dσ − (dα/α)·σ²), the noise rate of the path's own forward SDE; the reference's signed value is negative),
/// sigma (norm·σ_τ), linear (norm·τ), decreasing (¼(norm·cos(π(1−τ)) + 1)²), increasing-decreasing
/// (norm·sin²(π(1−τ))). The grid is shift(1 − linspace(t0, t1, N)) with t1 = 1 − last_step_size; N − 1 stochastic
/// steps, then the last step from the final grid time τ_L to 0 evaluated at τ_L (not at the unshifted time as the
/// reference does). SBDM is infinite at τ = 1, so for SBDM the grid starts at 1 − max(sample_eps, 1e-3).
/// Returns the N states (after each step, the last one after the last-step rule).
/// </summary>
public sealed class SdeSampler
{
    public const double SbdmMinimumStartEps = 1e-3;

    public SdeSampler(FlowTransport transport, string samplingMethod = "euler", string diffusionForm = "SBDM", double diffusionNorm = 1.0,
        string? lastStep = "Mean", double lastStepSize = 0.04, int numSteps = 250)
    {
        Transport = transport ?? throw new ArgumentNullException(nameof(transport));
        Method = samplingMethod switch
        {
            "euler" => SdeMethod.Euler,
            "heun" => SdeMethod.Heun,
            _ => throw new ArgumentException($"unsupported SDE sampling_method '{samplingMethod}': expected 'euler' or 'heun' (lower case, as the reference's keys)"),
        };
        Form = ParseDiffusionForm(diffusionForm);
        if (!(diffusionNorm >= 0) || !double.IsFinite(diffusionNorm))
            throw new ArgumentOutOfRangeException(nameof(diffusionNorm), diffusionNorm, "diffusion_norm must be a finite number >= 0 (a negative diffusion is meaningless)");
        Norm = diffusionNorm;
        Last = lastStep switch
        {
            null or "None" => LastStep.None,
            "Mean" => LastStep.Mean,
            "Euler" => LastStep.Euler,
            "Tweedie" => LastStep.Tweedie,
            _ => throw new ArgumentException($"unknown last_step '{lastStep}': expected None, 'Mean', 'Euler' or 'Tweedie'"),
        };
        if (!(lastStepSize >= 0 && lastStepSize < 1))
            throw new ArgumentOutOfRangeException(nameof(lastStepSize), lastStepSize, "last_step_size must lie in [0, 1)");
        if (numSteps < 2) throw new ArgumentOutOfRangeException(nameof(numSteps), numSteps, "num_steps must be >= 2");
        NumSteps = numSteps;
        var (t0, t1) = transport.CheckInterval(sde: true, eval: true, diffusionForm: Form == DiffusionForm.Sbdm ? "SBDM" : diffusionForm, lastStepSize: lastStepSize);
        if (Form == DiffusionForm.Sbdm) t0 = Math.Max(t0, SbdmMinimumStartEps);
        if (!(t0 < t1)) throw new ArgumentException($"the SDE interval [{t0}, {t1}] is empty; reduce last_step_size ({lastStepSize}) or eps");
        Times = TimeGrid.Shifted(t0, t1, numSteps, transport.Shift);
    }

    public FlowTransport Transport { get; }

    public SdeMethod Method { get; }

    public DiffusionForm Form { get; }

    public double Norm { get; }

    public LastStep Last { get; }

    public int NumSteps { get; }

    /// <summary>The shifted, decreasing grid; the last step goes from Times[^1] to 0.</summary>
    public IReadOnlyList<double> Times { get; }

    public static DiffusionForm ParseDiffusionForm(string name) => name switch
    {
        "constant" => DiffusionForm.Constant,
        "SBDM" => DiffusionForm.Sbdm,
        "sigma" => DiffusionForm.Sigma,
        "linear" => DiffusionForm.Linear,
        "decreasing" => DiffusionForm.Decreasing,
        "increasing-decreasing" or "inccreasing-decreasing" => DiffusionForm.IncreasingDecreasing,
        _ => throw new ArgumentException(
            $"unknown diffusion_form '{name}': expected constant, SBDM, sigma, linear, decreasing or increasing-decreasing"),
    };

    /// <summary>D(τ) ≥ 0, shaped to broadcast against x ([B, 1, ..., 1]).</summary>
    public Tensor Diffusion(Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var te = InterpolationPath.ExpandLike(t, x);
        var value = Form switch
        {
            DiffusionForm.Constant => full_like(te, Norm),
            DiffusionForm.Sbdm => Norm * Transport.Path.SbdmDiffusion(x, t),
            DiffusionForm.Sigma => Norm * Transport.Path.ComputeSigma(te).Sigma,
            DiffusionForm.Linear => Norm * te,
            DiffusionForm.Decreasing => 0.25 * (Norm * (Math.PI * (1 - te)).cos() + 1).square(),
            DiffusionForm.IncreasingDecreasing => Norm * (Math.PI * (1 - te)).sin().square(),
            _ => throw new InvalidOperationException($"unknown diffusion form {Form}"),
        };
        return value.MoveToOuterDisposeScope();
    }

    public Tensor Sample(Tensor xInit, ModelFunction model, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var states = new List<Tensor>();
        try
        {
            var x = xInit;
            for (var i = 0; i + 1 < Times.Count; i++)
            {
                using var scope = NewDisposeScope();
                var next = Method == SdeMethod.Euler
                    ? EulerMaruyamaStep(model, x, Times[i], Times[i + 1], generator)
                    : HeunStep(model, x, Times[i], Times[i + 1], generator);
                x = next.MoveToOuterDisposeScope();
                states.Add(x);
            }
            using (var scope = NewDisposeScope())
                states.Add(ApplyLastStep(model, x, Times[^1]).MoveToOuterDisposeScope());
            return stack(states);
        }
        finally
        {
            foreach (var state in states) state.Dispose();
        }
    }

    private Tensor TimeTensor(Tensor x, double t) => full(new[] { x.shape[0] }, t, dtype: x.dtype, device: x.device);

    /// <summary>The SDE drift in τ units, v − D·score (x moves by −drift·Δ when τ decreases by Δ).</summary>
    private (Tensor Drift, Tensor Diffusion) SdeDrift(ModelFunction model, Tensor x, double t)
    {
        var time = TimeTensor(x, t);
        var (velocity, score) = Transport.DriftAndScore(model, x, time);
        var diffusion = Diffusion(x, time);
        if (!diffusion.isfinite().all().item<bool>())
            throw new InvalidOperationException($"diffusion form {Form} is not finite at t = {t}");
        return (velocity - diffusion * score, diffusion);
    }

    private Tensor Noise(Tensor x, Generator? generator) => randn(x.shape, dtype: x.dtype, device: x.device, generator: generator);

    private Tensor EulerMaruyamaStep(ModelFunction model, Tensor x, double tCurrent, double tNext, Generator? generator)
    {
        var delta = tCurrent - tNext;
        var (drift, diffusion) = SdeDrift(model, x, tCurrent);
        var mean = x - drift * delta;
        return mean + (2 * diffusion * delta).sqrt() * Noise(x, generator);
    }

    /// <summary>Heun for additive noise: predictor x̃ = x − Δ·a(x, τ) + b(τ)·ΔW, corrector with the averaged drift and noise scale.</summary>
    private Tensor HeunStep(ModelFunction model, Tensor x, double tCurrent, double tNext, Generator? generator)
    {
        var delta = tCurrent - tNext;
        var increment = Noise(x, generator) * Math.Sqrt(delta);
        var (drift, diffusion) = SdeDrift(model, x, tCurrent);
        var scaleCurrent = (2 * diffusion).sqrt();
        var predictor = x - drift * delta + scaleCurrent * increment;
        var (driftNext, diffusionNext) = SdeDrift(model, predictor, tNext);
        var scaleNext = (2 * diffusionNext).sqrt();
        return x - 0.5 * delta * (drift + driftNext) + 0.5 * (scaleCurrent + scaleNext) * increment;
    }

    private Tensor ApplyLastStep(ModelFunction model, Tensor x, double tLast)
    {
        switch (Last)
        {
            case LastStep.None:
                return x.alias();
            case LastStep.Mean:
                return x - SdeDrift(model, x, tLast).Drift * tLast;
            case LastStep.Euler:
                return x - Transport.Drift(model, x, TimeTensor(x, tLast)) * tLast;
            case LastStep.Tweedie:
            {
                var time = TimeTensor(x, tLast);
                var (_, score) = Transport.DriftAndScore(model, x, time);
                var te = InterpolationPath.ExpandLike(time, x);
                var alpha = Transport.Path.ComputeAlpha(te).Alpha;
                var sigma = Transport.Path.ComputeSigma(te).Sigma;
                return (x + sigma.square() * score) / alpha;
            }
            default:
                throw new InvalidOperationException($"unknown last step {Last}");
        }
    }
}
