using static TorchSharp.torch;

namespace RAE.Models.Transport;

/// <summary>Which interpolation path the transport uses (reference names: 'Linear', 'GVP', 'VP').</summary>
public enum PathType
{
    Linear,
    Gvp,
    Vp,
}

/// <summary>
/// A probability path in the reference's reversed-time convention: t = 0 is data x1, t = 1 is noise x0, and
/// x_t = α_t·x1 + σ_t·x0. Every per-sample time tensor t has shape [B] and is broadcast over the other dimensions.
/// </summary>
public abstract class InterpolationPath
{
    public abstract PathType Type { get; }

    /// <summary>α_t (the data coefficient) and its time derivative.</summary>
    public abstract (Tensor Alpha, Tensor DAlpha) ComputeAlpha(Tensor t);

    /// <summary>σ_t (the noise coefficient) and its time derivative.</summary>
    public abstract (Tensor Sigma, Tensor DSigma) ComputeSigma(Tensor t);

    /// <summary>dα/α, written per path so the singular point (α = 0 at t = 1) is handled by the closed form.</summary>
    public abstract Tensor ComputeDAlphaAlphaRatio(Tensor t);

    public static InterpolationPath Create(PathType type) => type switch
    {
        PathType.Linear => new LinearPath(),
        PathType.Gvp => new GvpPath(),
        PathType.Vp => new VpPath(),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown path type"),
    };

    /// <summary>Reshapes a [B] time tensor to [B, 1, ..., 1] so it broadcasts against x.</summary>
    public static Tensor ExpandLike(Tensor t, Tensor x)
    {
        if (t.dim() != 1 || t.shape[0] != x.shape[0])
            throw new ArgumentException($"time must have shape [{x.shape[0]}] (one value per sample), got [{string.Join(",", t.shape)}]");
        var shape = new long[x.dim()];
        shape[0] = t.shape[0];
        for (var i = 1; i < shape.Length; i++) shape[i] = 1;
        return t.to(x.dtype).view(shape);
    }

    /// <summary>(t, x_t, u_t) = plan(t, x0, x1): x_t = α_t·x1 + σ_t·x0 and u_t = dα_t·x1 + dσ_t·x0.</summary>
    public (Tensor Xt, Tensor Ut) Plan(Tensor t, Tensor x0, Tensor x1)
    {
        using var scope = NewDisposeScope();
        var te = ExpandLike(t, x1);
        var (alpha, dAlpha) = ComputeAlpha(te);
        var (sigma, dSigma) = ComputeSigma(te);
        var xt = alpha * x1 + sigma * x0;
        var ut = dAlpha * x1 + dSigma * x0;
        return (xt.MoveToOuterDisposeScope(), ut.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The reference's compute_drift: velocity = DriftMean + ScoreCoefficient·score, with DriftMean = (dα/α)·x and
    /// ScoreCoefficient = (dα/α)·σ² − σ·dσ. In the reversed-time convention the coefficient is ≤ 0.
    /// </summary>
    public (Tensor DriftMean, Tensor ScoreCoefficient) ComputeDrift(Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var te = ExpandLike(t, x);
        var ratio = ComputeDAlphaAlphaRatio(te);
        var (sigma, dSigma) = ComputeSigma(te);
        var driftMean = ratio * x;
        var coefficient = ratio * sigma.square() - sigma * dSigma;
        return (driftMean.MoveToOuterDisposeScope(), coefficient.MoveToOuterDisposeScope());
    }

    /// <summary>score = (α/dα·v − x) / (σ² − (α/dα)·dσ·σ)  (Linear: (−(1−t)·v − x)/t).</summary>
    public Tensor ScoreFromVelocity(Tensor velocity, Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var te = ExpandLike(t, x);
        var (alpha, dAlpha) = ComputeAlpha(te);
        var (sigma, dSigma) = ComputeSigma(te);
        var reverseRatio = alpha / dAlpha;
        var variance = sigma.square() - reverseRatio * dSigma * sigma;
        return ((reverseRatio * velocity - x) / variance).MoveToOuterDisposeScope();
    }

    /// <summary>noise = (α/dα·v − x) / ((α/dα)·dσ − σ); the noise x0 that, with the implied data, gives x and v.</summary>
    public Tensor NoiseFromVelocity(Tensor velocity, Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var te = ExpandLike(t, x);
        var (alpha, dAlpha) = ComputeAlpha(te);
        var (sigma, dSigma) = ComputeSigma(te);
        var reverseRatio = alpha / dAlpha;
        var variance = reverseRatio * dSigma - sigma;
        return ((reverseRatio * velocity - x) / variance).MoveToOuterDisposeScope();
    }

    /// <summary>velocity = (dα/α)·x + ((dα/α)·σ² − σ·dσ)·score.</summary>
    public Tensor VelocityFromScore(Tensor score, Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var (driftMean, coefficient) = ComputeDrift(x, t);
        return (driftMean + coefficient * score).MoveToOuterDisposeScope();
    }

    /// <summary>score = −noise/σ_t (x0 is the standard normal noise of x_t = α·x1 + σ·x0).</summary>
    public Tensor ScoreFromNoise(Tensor noise, Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var te = ExpandLike(t, x);
        var (sigma, _) = ComputeSigma(te);
        return (noise / -sigma).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The SBDM diffusion D(t) ≥ 0 for sampling towards the data: |(dα/α)·σ² − σ·dσ| = σ·dσ − (dα/α)·σ², the
    /// coefficient with which the forward (data → noise) SDE of this path would inject noise (g²/2). The reference
    /// takes the signed value, which is negative in the reversed-time convention; see rae-spec §6.6 and §13 item 8.
    /// </summary>
    public Tensor SbdmDiffusion(Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var (_, coefficient) = ComputeDrift(x, t);
        return (-coefficient).MoveToOuterDisposeScope();
    }
}

/// <summary>ICPlan: α_t = 1 − t, σ_t = t.</summary>
public sealed class LinearPath : InterpolationPath
{
    public override PathType Type => PathType.Linear;

    public override (Tensor Alpha, Tensor DAlpha) ComputeAlpha(Tensor t) => (1 - t, full_like(t, -1.0));

    public override (Tensor Sigma, Tensor DSigma) ComputeSigma(Tensor t) => (t.clone(), ones_like(t));

    public override Tensor ComputeDAlphaAlphaRatio(Tensor t) => -1 / (1 - t);
}

/// <summary>GVPCPlan: α_t = cos(πt/2), σ_t = sin(πt/2).</summary>
public sealed class GvpPath : InterpolationPath
{
    public override PathType Type => PathType.Gvp;

    public override (Tensor Alpha, Tensor DAlpha) ComputeAlpha(Tensor t)
    {
        var angle = t * (Math.PI / 2);
        return (angle.cos(), -(Math.PI / 2) * angle.sin());
    }

    public override (Tensor Sigma, Tensor DSigma) ComputeSigma(Tensor t)
    {
        var angle = t * (Math.PI / 2);
        return (angle.sin(), (Math.PI / 2) * angle.cos());
    }

    public override Tensor ComputeDAlphaAlphaRatio(Tensor t) => -(Math.PI / 2) * (t * (Math.PI / 2)).tan();
}

/// <summary>
/// VPCPlan as rae-spec §6.2 states it: lmc(t) = −¼(1−t)²(σmax−σmin) − ½(1−t)σmin (σmin 0.1, σmax 20),
/// σ_t = exp(lmc), α_t = sqrt(1 − exp(2·lmc)); derivatives are the exact ones of these closed forms
/// (no fixture covers VP, no config uses it).
/// </summary>
public sealed class VpPath : InterpolationPath
{
    public const double SigmaMin = 0.1;
    public const double SigmaMax = 20.0;

    public override PathType Type => PathType.Vp;

    private static Tensor LogMeanCoefficient(Tensor t)
    {
        var s = 1 - t;
        return -0.25 * s.square() * (SigmaMax - SigmaMin) - 0.5 * s * SigmaMin;
    }

    private static Tensor DLogMeanCoefficient(Tensor t) => 0.5 * (1 - t) * (SigmaMax - SigmaMin) + 0.5 * SigmaMin;

    public override (Tensor Alpha, Tensor DAlpha) ComputeAlpha(Tensor t)
    {
        var sigmaSquared = (2 * LogMeanCoefficient(t)).exp();
        var alpha = (1 - sigmaSquared).sqrt();
        return (alpha, -sigmaSquared * DLogMeanCoefficient(t) / alpha);
    }

    public override (Tensor Sigma, Tensor DSigma) ComputeSigma(Tensor t)
    {
        var sigma = LogMeanCoefficient(t).exp();
        return (sigma, sigma * DLogMeanCoefficient(t));
    }

    public override Tensor ComputeDAlphaAlphaRatio(Tensor t)
    {
        var sigmaSquared = (2 * LogMeanCoefficient(t)).exp();
        return -sigmaSquared * DLogMeanCoefficient(t) / (1 - sigmaSquared);
    }
}
