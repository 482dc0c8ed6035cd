using System.Text.Json;
using RAE.Models.IO;
using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'frechet_distance' case (eval-spec §4): per set, the statistics of both reference paths from features
/// (float64 mean, float32 mean, np.cov with ddof 1), the trace pieces, and the four recorded distances (RAE's gFID,
/// torch-fidelity 0.3.0 and 0.4.0, the symmetric form), plus the distance against <c>ref_stats_example.npz</c>.
/// </summary>
public sealed class FrechetDistanceCaseChecker : IReferenceCaseChecker
{
    public const string CaseName = "frechet_distance";

    /// <summary>The case's tolerance for well-conditioned distances (relative).</summary>
    public const double WellConditionedTolerance = 1e-6;

    /// <summary>The case's tolerance for distances dominated by cancellation, relative to trace1 + trace2 + mean term + 1.</summary>
    public const double CancellationTolerance = 1e-9;

    /// <summary>
    /// Singular or nearly singular products (the reference's sqrtm went complex): every method carries rounding noise of
    /// "up to about 5e-9 × (tr S1 + tr S2)" at D ≤ 32 (eval-spec §4.3), so distances are compared to twice that.
    /// </summary>
    public const double SingularProductTolerance = 1e-8;

    public bool CanCheck(ReferenceCase referenceCase) =>
        referenceCase.Has("io.safetensors") && CaseNameOf(referenceCase) == CaseName;

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        var results = new List<OutputComparison>();
        foreach (var set in referenceCase.Root.GetProperty("sets").EnumerateObject())
            CheckSet(set.Name, set.Value, io, tolerance, results);
        if (referenceCase.Has("ref_stats_example.npz") && io.Has("ref_stats_example.fd_rae_gfid_vs_wellcond1"))
        {
            using var scope = NewDisposeScope();
            using var reference = Npz.LoadFidStatistics(referenceCase.PathOf("ref_stats_example.npz"));
            var ours = FrechetDistance.Gfid(io["wellcond.mu1"], io["wellcond.sigma1"], reference.Mu, reference.Sigma);
            results.Add(CompareScalar("ref_stats_example.fd_rae_gfid_vs_wellcond1", ours, io["ref_stats_example.fd_rae_gfid_vs_wellcond1"],
                Math.Abs(Scalar(io["ref_stats_example.fd_rae_gfid_vs_wellcond1"])), WellConditionedTolerance));
        }
        return results;
    }

    internal static string CaseNameOf(ReferenceCase referenceCase) =>
        referenceCase.Root.TryGetProperty("case", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString()! : "";

    private static void CheckSet(string set, JsonElement details, ReferenceTensorFile io, double tolerance, List<OutputComparison> results)
    {
        using var scope = NewDisposeScope();
        Tensor mu1, sigma1, mu2, sigma2, rfidMu1, rfidMu2;
        if (io.Has($"{set}.features1"))
        {
            using var moments1 = FeatureMoments.FromFeatures(io[$"{set}.features1"]);
            using var moments2 = FeatureMoments.FromFeatures(io[$"{set}.features2"]);
            var statistics1 = moments1.ToStatistics();
            var statistics2 = moments2.ToStatistics();
            (mu1, sigma1, mu2, sigma2) = (statistics1.Mu, statistics1.Sigma, statistics2.Mu, statistics2.Sigma);
            (rfidMu1, rfidMu2) = (moments1.MeanFloat32(), moments2.MeanFloat32());
            foreach (var (name, ours) in new[] { ("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2), ("mu1_f32", rfidMu1), ("mu2_f32", rfidMu2) })
                if (io.Has($"{set}.{name}")) results.Add(OutputComparison.Compare($"{set}.{name}", ours, io[$"{set}.{name}"], tolerance));
        }
        else
        {
            (mu1, sigma1, mu2, sigma2) = (io[$"{set}.mu1"], io[$"{set}.sigma1"], io[$"{set}.mu2"], io[$"{set}.sigma2"]);
            (rfidMu1, rfidMu2) = (mu1, mu2);
        }

        var terms = FrechetDistance.Terms(mu1, sigma1, mu2, sigma2, meansAsFloat64: true, retryWithOffset: false);
        var rfidTerms = FrechetDistance.Terms(rfidMu1, sigma1, rfidMu2, sigma2, meansAsFloat64: false, retryWithOffset: true);
        var scale = Scalar(io[$"{set}.trace1"]) + Scalar(io[$"{set}.trace2"]) + Scalar(io[$"{set}.mean_term"]) + 1;
        var squareRootWentComplex = details.TryGetProperty("sqrtm_is_complex", out var complex) && complex.GetBoolean();
        var wellConditioned = !squareRootWentComplex && Math.Abs(Scalar(io[$"{set}.fd_rae_gfid"])) > 1e-3 * scale;
        var toleranceOnScale = squareRootWentComplex ? SingularProductTolerance : CancellationTolerance;

        void Add(string output, double ours)
        {
            var name = $"{set}.{output}";
            if (!io.Has(name)) return;
            results.Add(wellConditioned
                ? CompareScalar(name, ours, io[name], Math.Abs(Scalar(io[name])), WellConditionedTolerance)
                : CompareScalar(name, ours, io[name], scale, toleranceOnScale));
        }

        var traceEigenvalues = FrechetDistance.TraceSqrtProductEigenvalues(sigma1, sigma2);
        results.Add(CompareScalar($"{set}.mean_term", terms.MeanTerm, io[$"{set}.mean_term"], scale, tolerance));
        results.Add(CompareScalar($"{set}.trace1", terms.Trace1, io[$"{set}.trace1"], scale, tolerance));
        results.Add(CompareScalar($"{set}.trace2", terms.Trace2, io[$"{set}.trace2"], scale, tolerance));
        Add("tr_covmean_sqrtm", terms.TraceCovMean);
        Add("tr_covmean_eigvals", traceEigenvalues);
        Add("fd_rae_gfid", FrechetDistance.Gfid(mu1, sigma1, mu2, sigma2));
        Add("fd_torch_fidelity_0_3_0", FrechetDistance.TorchFidelity(rfidMu1, sigma1, rfidMu2, sigma2));
        Add("fd_torch_fidelity_0_4_0", rfidTerms.MeanTerm + rfidTerms.Trace1 + rfidTerms.Trace2 - 2 * traceEigenvalues);
        Add("fd_eigh_symmetric", terms.Distance);
        Add("rae_unclamped", terms.Distance);
    }

    private static double Scalar(Tensor value) => value.to(ScalarType.Float64).item<double>();

    /// <summary>A scalar comparison judged on a given scale: relative error = |ours − ref| / scale.</summary>
    internal static OutputComparison CompareScalar(string name, double ours, Tensor expected, double scale, double tolerance)
    {
        var error = Math.Abs(ours - Scalar(expected));
        if (double.IsNaN(ours) || double.IsNaN(Scalar(expected))) error = double.IsNaN(ours) && double.IsNaN(Scalar(expected)) ? 0 : double.PositiveInfinity;
        return new OutputComparison(name, expected.shape, error, scale > 0 ? error / scale : error, tolerance);
    }
}
