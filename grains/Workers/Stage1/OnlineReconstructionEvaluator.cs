using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Metrics;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// Stage 1 online evaluation (rae-spec §4.9, §10.1) on rank 0's worker thread: the EMA decoder's eval-mode reconstructions
/// of the first <see cref="OnlineEvaluationSpec.Samples"/> images of the evaluation dataset (the held-out
/// <see cref="OnlineEvaluationSpec.ReferenceDataset"/>, else the training dataset; ADM center-cropped, manifest order, so
/// the same images every time), both as uint8 (originals as stored, reconstructions clamped and <c>trunc(255·x)</c> as the
/// reference), scored with the reference's PSNR and SSIM, <c>rfd_resnet18</c> (the frozen ResNet18's features, rFID's
/// numerics) and, with the Inception weights, rFID. It draws no random numbers and changes no weights, so training goes on
/// exactly as without it. The feature extractors are loaded on first use and kept.
/// </summary>
internal sealed class OnlineReconstructionEvaluator(OnlineEvaluationSpec online, DatasetImageStream images) : IDisposable
{
    /// <summary>Images per reconstruction pass and per metric batch.</summary>
    public const int BatchSize = 32;

    private ResNet18Features? _resnet;
    private FidInceptionV3? _inception;

    /// <summary>The evaluation images: <paramref name="online"/>'s held-out dataset when it names another than the training one.</summary>
    public static OnlineReconstructionEvaluator Create(OnlineEvaluationSpec online, IBlobStore store, DatasetImageStream training, string trainingDataset) =>
        new(online, online.ReferenceDataset is { } heldOut && heldOut != trainingDataset
            ? DatasetImageStream.ForEvaluation(store, heldOut, training.ImageSize, "eval.data_path")
            : training);

    public IReadOnlyDictionary<string, double> Score(Device device, Func<Tensor, Tensor> reconstruct)
    {
        var count = Math.Min(online.Samples, images.ImageCount);
        // Loaded outside the scope below, which would otherwise dispose their weights.
        if (online.ReconstructionMetrics.Contains(EvaluationMetric.RfdResNet18)) _resnet ??= ResNet18Features.Load();
        if (online.ReconstructionMetrics.Contains(EvaluationMetric.Rfid)) _inception ??= LoadInception();
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var originalBatches = new List<Tensor>();
        var reconstructionBatches = new List<Tensor>();
        for (var first = 0; first < count; first += BatchSize)
        {
            var indices = Enumerable.Range(first, Math.Min(BatchSize, count - first)).Select(i => (long)i).ToArray();
            var batch = images.CenterCropped(indices, device);
            originalBatches.Add(batch.mul(255).round().to(ScalarType.Byte).permute(0, 2, 3, 1).cpu());
            reconstructionBatches.Add(reconstruct(batch).clamp(0, 1).mul(255).trunc().to(ScalarType.Byte).permute(0, 2, 3, 1).cpu());
        }
        var originals = cat(originalBatches, 0);
        var reconstructions = cat(reconstructionBatches, 0);
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        ReconstructionScores? pixelScores = null;
        foreach (var metric in online.ReconstructionMetrics)
        {
            values[OnlineEvaluationSpec.DetailKey(metric)] = metric switch
            {
                EvaluationMetric.Psnr => (pixelScores ??= ReconstructionMetrics.Evaluate(originals, reconstructions, BatchSize)).Psnr,
                EvaluationMetric.Ssim => (pixelScores ??= ReconstructionMetrics.Evaluate(originals, reconstructions, BatchSize)).Ssim,
                EvaluationMetric.RfdResNet18 => FeatureDistances.RfdResNet18(_resnet!, originals, reconstructions, BatchSize),
                EvaluationMetric.Rfid => FeatureDistances.Rfid(_inception!, originals, reconstructions, BatchSize),
                _ => throw new ArgumentOutOfRangeException(nameof(online), metric, "not a reconstruction metric"),
            };
        }
        return values;
    }

    private FidInceptionV3 LoadInception() => FidInceptionV3.Load(online.InceptionWeightsPath
        ?? throw new InvalidOperationException("metric rfid needs the FID Inception weights (eval.inception_path)"));

    public void Dispose()
    {
        _resnet?.Dispose();
        _inception?.Dispose();
        (_resnet, _inception) = (null, null);
    }
}
