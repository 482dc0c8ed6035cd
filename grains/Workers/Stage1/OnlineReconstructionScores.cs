using RAE.GrainInterfaces;
using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// Stage 1 online evaluation (rae-spec §4.9, §10.1) on rank 0's worker thread: the EMA decoder's eval-mode reconstructions
/// of the first <see cref="OnlineEvaluationSpec.Samples"/> images of the dataset (ADM center-cropped, manifest order, so
/// the same images every time), both as uint8 (originals as stored, reconstructions clamped and <c>trunc(255·x)</c> as the
/// reference), scored with the reference's PSNR and SSIM. It draws no random numbers and changes no weights, so training
/// goes on exactly as without it.
/// </summary>
internal static class OnlineReconstructionScores
{
    /// <summary>Images per reconstruction pass and per PSNR/SSIM batch.</summary>
    public const int BatchSize = 32;

    public static IReadOnlyDictionary<string, double> Score(DatasetImageStream data, OnlineEvaluationSpec online, Device device, Func<Tensor, Tensor> reconstruct)
    {
        var count = Math.Min(online.Samples, data.ImageCount);
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var originals = new List<Tensor>();
        var reconstructions = new List<Tensor>();
        for (var first = 0; first < count; first += BatchSize)
        {
            var indices = Enumerable.Range(first, Math.Min(BatchSize, count - first)).Select(i => (long)i).ToArray();
            var images = data.CenterCropped(indices, device);
            originals.Add(images.mul(255).round().to(ScalarType.Byte).permute(0, 2, 3, 1).cpu());
            reconstructions.Add(reconstruct(images).clamp(0, 1).mul(255).trunc().to(ScalarType.Byte).permute(0, 2, 3, 1).cpu());
        }
        var scores = ReconstructionMetrics.Evaluate(cat(originals, 0), cat(reconstructions, 0), BatchSize);
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var metric in online.ReconstructionMetrics)
            values[OnlineEvaluationSpec.DetailKey(metric)] = metric == EvaluationMetric.Ssim ? scores.Ssim : scores.Psnr;
        return values;
    }
}
