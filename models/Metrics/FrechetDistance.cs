using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace RAE.Models.Metrics;

/// <summary>The pieces of <c>|mu1 − mu2|² + tr(S1) + tr(S2) − 2 tr((S1 S2)^½)</c>, all float64.</summary>
public sealed record FrechetTerms(double MeanTerm, double Trace1, double Trace2, double TraceCovMean)
{
    /// <summary>The distance as torch-fidelity sums it, unclamped: mean term + trace1 + trace2 − 2·tr(covmean).</summary>
    public double Distance => MeanTerm + Trace1 + Trace2 - 2 * TraceCovMean;

    /// <summary>The scale on which rounding noise of the distance is judged: trace1 + trace2 + mean term + 1.</summary>
    public double Scale => Trace1 + Trace2 + MeanTerm + 1;
}

/// <summary>
/// The Fréchet distance between two Gaussians fitted to features (eval-spec §4.2, §4.3). The reference takes
/// <c>scipy.linalg.sqrtm(S1 S2)</c> and only its trace is used, so we compute that trace from the stable symmetric
/// form <c>tr((S1 S2)^½) = Σ sqrt(λ_i(A S2 A))</c>, <c>A = S1^½</c> by a symmetric eigendecomposition with negative
/// eigenvalues clipped to 0. It equals the sqrtm trace exactly in exact arithmetic; for well-conditioned inputs the
/// two agree to about 1e-13, and for singular products (N &lt; D) both carry rounding noise of a few 1e-9 of
/// tr S1 + tr S2, where this form is the better-behaved one (no complex detour).
/// </summary>
public static class FrechetDistance
{
    /// <summary>torch-fidelity's retry offset, added to both covariances when the first attempt is not finite.</summary>
    public const double SingularOffset = 1e-6;

    /// <summary>
    /// RAE's gFID (<c>eval/fid.py::_fid_from_moments</c>): float64 means, <c>max(fid, 0)</c>. A NaN (a failed square
    /// root) is passed through, as <c>max(nan, 0.0)</c> does in Python.
    /// </summary>
    public static double Gfid(Tensor mu1, Tensor sigma1, Tensor mu2, Tensor sigma2)
    {
        var terms = Terms(mu1, sigma1, mu2, sigma2, meansAsFloat64: true, retryWithOffset: false);
        var distance = terms.Distance;
        return double.IsNaN(distance) ? distance : Math.Max(distance, 0.0);
    }

    /// <summary>
    /// The rFID distance of torch-fidelity 0.3.0 (<c>fid_statistics_to_metric</c>): the mean difference keeps the
    /// means' dtype (float32 means, as its statistics from features have, give a float32 dot), a non-finite square root is retried with <see cref="SingularOffset"/>·I added to
    /// both covariances, and the result is not clamped.
    /// </summary>
    public static double TorchFidelity(Tensor mu1, Tensor sigma1, Tensor mu2, Tensor sigma2) =>
        Terms(mu1, sigma1, mu2, sigma2, meansAsFloat64: false, retryWithOffset: true).Distance;

    /// <summary>
    /// The pieces of the distance. <paramref name="meansAsFloat64"/> casts the means first (RAE's gFID); otherwise the
    /// difference is taken in the means' own dtype, as numpy does. <paramref name="retryWithOffset"/> enables
    /// torch-fidelity's retry with <see cref="SingularOffset"/>·I when the first square root is not finite.
    /// </summary>
    public static FrechetTerms Terms(Tensor mu1, Tensor sigma1, Tensor mu2, Tensor sigma2, bool meansAsFloat64, bool retryWithOffset)
    {
        Validate(mu1, sigma1, "1");
        Validate(mu2, sigma2, "2");
        if (mu1.shape[0] != mu2.shape[0])
            throw new ArgumentException($"the two statistics have different feature dimensions: {mu1.shape[0]} and {mu2.shape[0]}");
        using var scope = NewDisposeScope();
        var s1 = sigma1.detach().cpu().to(ScalarType.Float64);
        var s2 = sigma2.detach().cpu().to(ScalarType.Float64);
        var diff = meansAsFloat64
            ? mu1.detach().cpu().to(ScalarType.Float64) - mu2.detach().cpu().to(ScalarType.Float64)
            : mu1.detach().cpu() - mu2.detach().cpu();
        var meanTerm = diff.dot(diff).to(ScalarType.Float64).item<double>();
        var trace1 = s1.trace().item<double>();
        var trace2 = s2.trace().item<double>();
        var traceCovMean = TryTraceSqrtProduct(s1, s2);
        if (!double.IsFinite(traceCovMean) && retryWithOffset)
        {
            var offset = eye(s1.shape[0], dtype: ScalarType.Float64) * SingularOffset;
            traceCovMean = TryTraceSqrtProduct(s1 + offset, s2 + offset);
        }
        return new FrechetTerms(meanTerm, trace1, trace2, traceCovMean);
    }

    /// <summary>tr((S1 S2)^½) by the stable symmetric form (class summary). Both inputs are symmetric [D, D].</summary>
    public static double TraceSqrtProduct(Tensor sigma1, Tensor sigma2)
    {
        using var scope = NewDisposeScope();
        var s1 = sigma1.detach().cpu().to(ScalarType.Float64);
        var s2 = sigma2.detach().cpu().to(ScalarType.Float64);
        var (eigenvalues, eigenvectors) = linalg.eigh(s1);
        var root = (eigenvectors * eigenvalues.clamp_min(0).sqrt().unsqueeze(0)).matmul(eigenvectors.t());
        var product = root.matmul(s2).matmul(root);
        var symmetric = (product + product.t()) * 0.5;
        return linalg.eigvalsh(symmetric).clamp_min(0).sqrt().sum().item<double>();
    }

    /// <summary>torch-fidelity 0.4.0's trace: Σ Re sqrt(λ_i(S1 S2)) over the (complex) eigenvalues of the product.</summary>
    public static double TraceSqrtProductEigenvalues(Tensor sigma1, Tensor sigma2)
    {
        using var scope = NewDisposeScope();
        var product = sigma1.detach().cpu().to(ScalarType.Float64).matmul(sigma2.detach().cpu().to(ScalarType.Float64));
        return linalg.eigvals(product).sqrt().real.sum().item<double>();
    }

    private static double TryTraceSqrtProduct(Tensor sigma1, Tensor sigma2)
    {
        try
        {
            return TraceSqrtProduct(sigma1, sigma2);
        }
        catch (Exception error) when (error is ExternalException or ArgumentException or InvalidOperationException)
        {
            // LAPACK did not converge (non-finite input); the reference's sqrtm yields a non-finite matrix then.
            return double.NaN;
        }
    }

    private static void Validate(Tensor mu, Tensor sigma, string which)
    {
        if (mu.dim() != 1 || sigma.dim() != 2 || sigma.shape[0] != mu.shape[0] || sigma.shape[1] != mu.shape[0])
            throw new ArgumentException(
                $"statistics {which}: mu [{string.Join(", ", mu.shape)}] and sigma [{string.Join(", ", sigma.shape)}] are not a [D] mean and a [D, D] covariance");
        if (!mu.is_floating_point() || !sigma.is_floating_point())
            throw new ArgumentException($"statistics {which}: mu and sigma must be floating point, got {mu.dtype} and {sigma.dtype}");
    }
}
