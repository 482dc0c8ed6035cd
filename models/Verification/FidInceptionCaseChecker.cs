using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'fid_inception' case (eval-spec §3, §4): the full state dict (stored + oracle-hash-v1 tensors, each checked
/// against its SHA-256) loads strictly into <see cref="FidInceptionV3"/>; the TF1 resize; the 2048-d features of every
/// input size, the '64', '192', '768' taps and the per-module traces of x64; and end to end, the rFID and gFID paths
/// (features, float32 and float64 means, covariance diagonals, PSNR, SSIM and the three distances).
/// </summary>
public sealed class FidInceptionCaseChecker : IReferenceCaseChecker
{
    public const string CaseName = "fid_inception";

    /// <summary>
    /// End-to-end distances are compared on the scale trace1 + trace2 (N = 8 &lt; D: singular covariances), to this at the
    /// default feature tolerance; a looser feature tolerance loosens it in proportion (the distances inherit the features' error).
    /// </summary>
    public const double EndToEndTolerance = 1e-6;

    public const int EndToEndBatchSize = 3;

    public bool CanCheck(ReferenceCase referenceCase) =>
        referenceCase.Has("io.safetensors") && referenceCase.Has("weights.safetensors") && FrechetDistanceCaseChecker.CaseNameOf(referenceCase) == CaseName;

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        var stateDict = OracleHashWeights.LoadFullStateDict(referenceCase);
        FidInceptionV3 model;
        try
        {
            model = FidInceptionV3.FromStateDict(stateDict, referenceCase.Name);
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
        using (model)
        {
            var results = new List<OutputComparison>();
            CheckResize(io, tolerance, results);
            CheckFeatures(model, io, tolerance, results);
            if (io.Has("e2e.ref")) CheckEndToEnd(model, io, tolerance, results);
            return results;
        }
    }

    private static void CheckResize(ReferenceTensorFile io, double tolerance, List<OutputComparison> results)
    {
        using var scope = NewDisposeScope();
        if (io.Has("resized.x37x53"))
            results.Add(OutputComparison.Compare("resized.x37x53", TensorFlowResize.Bilinear(io["x37x53"].to(ScalarType.Float32), 299, 299), io["resized.x37x53"], tolerance));
        if (io.Has("resized.x512.tl"))
        {
            var resized = TensorFlowResize.Bilinear(io["x512"].to(ScalarType.Float32), 299, 299);
            results.Add(OutputComparison.Compare("resized.x512.tl", resized[.., .., ..32, ..32], io["resized.x512.tl"], tolerance));
            results.Add(OutputComparison.Compare("resized.x512.br", resized[.., .., ^32.., ^32..], io["resized.x512.br"], tolerance));
        }
    }

    private static void CheckFeatures(FidInceptionV3 model, ReferenceTensorFile io, double tolerance, List<OutputComparison> results)
    {
        foreach (var input in new[] { "x64", "x299", "x256", "x512", "x37x53" })
        {
            if (!io.Has(input) || !io.Has($"features.{input}.2048")) continue;
            using var scope = NewDisposeScope();
            var traced = input == "x64";
            void Trace(string module, Tensor output)
            {
                var prefix = $"trace.{input}.{module}";
                if (io.Has($"{prefix}.mean")) results.Add(OutputComparison.Compare($"{prefix}.mean", output.mean([2, 3]), io[$"{prefix}.mean"], tolerance));
                if (io.Has($"{prefix}.tl")) results.Add(OutputComparison.Compare($"{prefix}.tl", output[..1, .., ..3, ..3], io[$"{prefix}.tl"], tolerance));
                if (io.Has($"{prefix}.br")) results.Add(OutputComparison.Compare($"{prefix}.br", output[..1, .., ^3.., ^3..], io[$"{prefix}.br"], tolerance));
            }
            using var features = model.Extract(io[input], withTaps: traced, traced ? Trace : null);
            results.Add(OutputComparison.Compare($"features.{input}.2048", features.Pool2048, io[$"features.{input}.2048"], tolerance));
            foreach (var (tap, value) in new[] { ("64", features.Pool64), ("192", features.Pool192), ("768", features.Pool768) })
                if (value is not null && io.Has($"features.{input}.{tap}"))
                    results.Add(OutputComparison.Compare($"features.{input}.{tap}", value, io[$"features.{input}.{tap}"], tolerance));
        }
    }

    private static void CheckEndToEnd(FidInceptionV3 model, ReferenceTensorFile io, double tolerance, List<OutputComparison> results)
    {
        using var scope = NewDisposeScope();
        var reference = io["e2e.ref"];
        var reconstruction = io["e2e.rec"];
        var scores = ReconstructionMetrics.Evaluate(reference, reconstruction, EndToEndBatchSize);
        results.Add(OutputComparison.Compare("e2e.psnr", tensor((double)scores.Psnr), io["e2e.psnr"], tolerance));
        results.Add(OutputComparison.Compare("e2e.ssim", tensor((double)scores.Ssim), io["e2e.ssim"], tolerance));

        // Streamed in the reference's batches of 3 (the last one partial), as the evaluation jobs stream them. The batch
        // features are moved out of Moments' per-batch scope into this method's.
        var referenceBatches = new List<Tensor>();
        var reconstructionBatches = new List<Tensor>();
        using var referenceMoments = FeatureDistances.Moments(model.forward, reference.permute(0, 3, 1, 2), EndToEndBatchSize,
            FidInceptionV3.FeatureDimension, features => referenceBatches.Add(features.clone().MoveToOuterDisposeScope()));
        using var reconstructionMoments = FeatureDistances.Moments(model.forward, reconstruction.permute(0, 3, 1, 2), EndToEndBatchSize,
            FidInceptionV3.FeatureDimension, features => reconstructionBatches.Add(features.clone().MoveToOuterDisposeScope()));
        Compare(results, io, "e2e.rfid_path.features_ref", cat(referenceBatches, 0), tolerance);
        Compare(results, io, "e2e.rfid_path.features_rec", cat(reconstructionBatches, 0), tolerance);
        using var referenceStatistics = referenceMoments.ToStatistics();
        using var reconstructionStatistics = reconstructionMoments.ToStatistics();
        var referenceMeanF32 = referenceMoments.MeanFloat32();
        var reconstructionMeanF32 = reconstructionMoments.MeanFloat32();
        Compare(results, io, "e2e.rfid_path.mu_ref_f32", referenceMeanF32, tolerance);
        Compare(results, io, "e2e.rfid_path.mu_rec_f32", reconstructionMeanF32, tolerance);
        Compare(results, io, "e2e.rfid_path.sigma_ref_diag", referenceStatistics.Sigma.diagonal(), tolerance);
        Compare(results, io, "e2e.rfid_path.sigma_rec_diag", reconstructionStatistics.Sigma.diagonal(), tolerance);
        Compare(results, io, "e2e.gfid_path.mu_ref", referenceStatistics.Mu, tolerance);
        Compare(results, io, "e2e.gfid_path.mu_gen", reconstructionStatistics.Mu, tolerance);
        Compare(results, io, "e2e.gfid_path.sigma_ref_diag", referenceStatistics.Sigma.diagonal(), tolerance);
        Compare(results, io, "e2e.gfid_path.sigma_gen_diag", reconstructionStatistics.Sigma.diagonal(), tolerance);

        var rfidTerms = FrechetDistance.Terms(referenceMeanF32, referenceStatistics.Sigma, reconstructionMeanF32, reconstructionStatistics.Sigma,
            meansAsFloat64: false, retryWithOffset: true);
        var scale = rfidTerms.Trace1 + rfidTerms.Trace2;
        void CompareDistance(string name, double ours)
        {
            if (io.Has(name)) results.Add(FrechetDistanceCaseChecker.CompareScalar(name, ours, io[name], scale,
                EndToEndTolerance * Math.Max(1, tolerance / ReferenceVerifier.DefaultTolerance)));
        }
        CompareDistance("e2e.rfid", FeatureDistances.Rfid(referenceMoments, reconstructionMoments));
        CompareDistance("e2e.rfid_eigh_symmetric", rfidTerms.Distance);
        CompareDistance("e2e.rfid_eigvals_0_4_0", rfidTerms.MeanTerm + rfidTerms.Trace1 + rfidTerms.Trace2
            - 2 * FrechetDistance.TraceSqrtProductEigenvalues(referenceStatistics.Sigma, reconstructionStatistics.Sigma));
        CompareDistance("e2e.gfid", FeatureDistances.Gfid(reconstructionMoments, referenceStatistics));
        var gfid = FrechetDistance.Gfid(reconstructionStatistics.Mu, reconstructionStatistics.Sigma, referenceStatistics.Mu, referenceStatistics.Sigma);
        CompareDistance("e2e.gfid_eigh_symmetric", gfid);
    }

    private static void Compare(List<OutputComparison> results, ReferenceTensorFile file, string name, Tensor actual, double tolerance)
    {
        if (file.Has(name)) results.Add(OutputComparison.Compare(name, actual, file[name], tolerance));
    }
}
