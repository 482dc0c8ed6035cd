using System.Globalization;
using static TorchSharp.torch;

namespace RAE.Models.Transport;

/// <summary>
/// The training-time distribution of rae-spec §6.3: 'uniform' on [t0, t1) or the truncated 'logit-normal_μ_σ'
/// (inverse-CDF on [t0, t1]), followed by the dimension-dependent shift t ← s·t / (1 + (s − 1)·t).
/// </summary>
public sealed class TimeDistribution
{
    private TimeDistribution(string name, bool isLogitNormal, double mu, double sigma, double shift)
    {
        Name = name;
        IsLogitNormal = isLogitNormal;
        Mu = mu;
        Sigma = sigma;
        Shift = shift;
    }

    /// <summary>The configuration string it was parsed from ('uniform', 'logit-normal_0_1', ...).</summary>
    public string Name { get; }

    public bool IsLogitNormal { get; }

    public double Mu { get; }

    public double Sigma { get; }

    /// <summary>The shift factor s ≥ 1 (1 = no shift).</summary>
    public double Shift { get; }

    /// <summary>Parses 'uniform' or 'logit-normal_μ_σ' (σ &gt; 0) and validates the shift (s ≥ 1, finite).</summary>
    public static TimeDistribution Parse(string timeDistType, double shift = 1.0)
    {
        ArgumentNullException.ThrowIfNull(timeDistType);
        ValidateShift(shift);
        if (timeDistType == "uniform") return new TimeDistribution(timeDistType, false, 0, 1, shift);
        var parts = timeDistType.Split('_');
        if (parts[0] != "logit-normal")
            throw new ArgumentException(
                $"unknown time_dist_type '{timeDistType}': expected 'uniform' or 'logit-normal_<mu>_<sigma>' (e.g. 'logit-normal_0_1')",
                nameof(timeDistType));
        if (parts.Length != 3)
            throw new ArgumentException(
                $"time_dist_type '{timeDistType}' must have the form 'logit-normal_<mu>_<sigma>' (two numbers after the name)",
                nameof(timeDistType));
        if (!double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var mu) || !double.IsFinite(mu))
            throw new ArgumentException($"time_dist_type '{timeDistType}': mu '{parts[1]}' is not a finite number", nameof(timeDistType));
        if (!double.TryParse(parts[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var sigma) || !double.IsFinite(sigma) || sigma <= 0)
            throw new ArgumentException($"time_dist_type '{timeDistType}': sigma '{parts[2]}' must be a finite number > 0", nameof(timeDistType));
        return new TimeDistribution(timeDistType, true, mu, sigma, shift);
    }

    /// <summary>s = sqrt(shift_dim / shift_base) (rae-spec §6.3; e.g. sqrt(196608/4096) = sqrt(48) for 256 px).</summary>
    public static double ShiftFromDimensions(double shiftDim, double shiftBase)
    {
        if (!(shiftDim > 0) || !(shiftBase > 0) || !double.IsFinite(shiftDim) || !double.IsFinite(shiftBase))
            throw new ArgumentException($"time_dist_shift_dim ({shiftDim}) and time_dist_shift_base ({shiftBase}) must be finite and > 0");
        var shift = Math.Sqrt(shiftDim / shiftBase);
        if (shift < 1)
            throw new ArgumentException(
                $"time_dist_shift = sqrt(time_dist_shift_dim / time_dist_shift_base) = sqrt({shiftDim}/{shiftBase}) = {shift} is below 1; the reference asserts shift >= 1");
        return shift;
    }

    public static void ValidateShift(double shift)
    {
        if (!double.IsFinite(shift) || shift < 1)
            throw new ArgumentOutOfRangeException(nameof(shift), shift, $"time_dist_shift must be a finite number >= 1 (the reference asserts it), got {shift}");
    }

    /// <summary>t ← s·t / (1 + (s − 1)·t); identity for s = 1. Keeps t's dtype.</summary>
    public static Tensor ApplyShift(Tensor t, double shift)
    {
        if (shift == 1.0) return t.clone();
        return shift * t / (1 + (shift - 1) * t);
    }

    /// <summary>
    /// Maps recorded uniform draws u ∈ [0, 1) (any shape) to times on [t0, t1], then shifts them. This is the
    /// deterministic half of the reference's Transport.sample, so fixtures with recorded u reproduce exactly.
    /// </summary>
    public Tensor FromUniform(Tensor u, double t0, double t1)
    {
        if (!(t0 <= t1)) throw new ArgumentException($"time interval [{t0}, {t1}] is empty (t0 must be <= t1)");
        using var scope = NewDisposeScope();
        Tensor t;
        if (!IsLogitNormal)
        {
            t = u * (t1 - t0) + t0;
        }
        else
        {
            // Truncated logit-normal by inverse CDF, in float64: U' = Φ(a) + (Φ(b) − Φ(a))·clamp(u, 0, 1).
            var phiA = NormalCdf((Logit(t0) - Mu) / Sigma);
            var phiB = NormalCdf((Logit(t1) - Mu) / Sigma);
            var uPrime = phiA + (phiB - phiA) * u.to(float64).clamp(0.0, 1.0);
            var z = special.ndtri(uPrime);
            t = special.expit(Mu + Sigma * z).clamp(t0, t1).to(u.dtype);
        }
        return ApplyShift(t, Shift).MoveToOuterDisposeScope();
    }

    /// <summary>Draws batch uniform values on the CPU (float32, optionally from a seeded generator), then maps them.</summary>
    public Tensor Sample(long batch, double t0, double t1, Generator? generator = null, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var u = rand(new[] { batch }, dtype: ScalarType.Float32, generator: generator);
        return FromUniform(u, t0, t1).to(dtype, device ?? CPU).MoveToOuterDisposeScope();
    }

    private static double Logit(double p) => p <= 0 ? double.NegativeInfinity : p >= 1 ? double.PositiveInfinity : Math.Log(p / (1 - p));

    private static double NormalCdf(double x)
    {
        if (double.IsNegativeInfinity(x)) return 0;
        if (double.IsPositiveInfinity(x)) return 1;
        using var value = tensor(x, float64);
        using var cdf = special.ndtr(value);
        return cdf.item<double>();
    }
}
