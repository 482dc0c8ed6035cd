using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'recon_metrics' case (eval-spec §5): the SSIM window, and per set the per-batch ÷255 decisions, the
/// per-image mse, PSNR and SSIM, image 0's full SSIM map, and the two float32 means the reference returns.
/// </summary>
public sealed class ReconstructionMetricsCaseChecker : IReferenceCaseChecker
{
    public const string CaseName = "recon_metrics";

    public bool CanCheck(ReferenceCase referenceCase) =>
        referenceCase.Has("io.safetensors") && FrechetDistanceCaseChecker.CaseNameOf(referenceCase) == CaseName;

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        using var scope = NewDisposeScope();
        var results = new List<OutputComparison>();
        if (io.Has("ssim_kernel"))
            results.Add(OutputComparison.Compare("ssim_kernel", ReconstructionMetrics.GaussianWindow(1)[0, 0], io["ssim_kernel"], tolerance));
        foreach (var set in referenceCase.Root.GetProperty("sets").EnumerateObject())
        {
            var name = set.Name;
            var batchSize = set.Value.GetProperty("batch_size").GetInt32();
            var reference = io[$"{name}.ref"];
            var reconstruction = io[$"{name}.rec"];
            var scores = ReconstructionMetrics.Evaluate(reference, reconstruction, batchSize);
            var divided = tensor(scores.ReferenceDividedBy255.Zip(scores.ReconstructionDividedBy255)
                .SelectMany(pair => new[] { pair.First ? 1f : 0f, pair.Second ? 1f : 0f }).ToArray(), [scores.ReferenceDividedBy255.Length, 2]);
            Compare(results, io, $"{name}.divided_by_255", divided, tolerance);
            Compare(results, io, $"{name}.mse_per_image", tensor(scores.MsePerImage), tolerance);
            Compare(results, io, $"{name}.psnr_per_image", tensor(scores.PsnrPerImage), tolerance);
            Compare(results, io, $"{name}.ssim_per_image", tensor(scores.SsimPerImage), tolerance);
            Compare(results, io, $"{name}.psnr", tensor(scores.Psnr), tolerance);
            Compare(results, io, $"{name}.ssim", tensor(scores.Ssim), tolerance);
            if (io.Has($"{name}.ssim_map0"))
            {
                var firstBatch = Math.Min(batchSize, reference.shape[0]);
                var referenceImages = ReconstructionMetrics.ToUnitRange(reference.narrow(0, 0, firstBatch), out _);
                var reconstructedImages = ReconstructionMetrics.ToUnitRange(reconstruction.narrow(0, 0, firstBatch), out _);
                Compare(results, io, $"{name}.ssim_map0", ReconstructionMetrics.SsimMap(referenceImages[..1], reconstructedImages[..1]), tolerance);
            }
        }
        return results;
    }

    private static void Compare(List<OutputComparison> results, ReferenceTensorFile file, string name, Tensor actual, double tolerance)
    {
        if (file.Has(name)) results.Add(OutputComparison.Compare(name, actual, file[name], tolerance));
    }
}
