using static TorchSharp.torch;

namespace RAE.Models.Metrics;

/// <summary>Per-image and mean PSNR/SSIM of a reconstruction run, as <c>eval/ref_iqa.py</c> reports them (float32).</summary>
public sealed record ReconstructionScores(
    float Psnr, float Ssim, float[] MsePerImage, float[] PsnrPerImage, float[] SsimPerImage, bool[] ReferenceDividedBy255, bool[] ReconstructionDividedBy255);

/// <summary>
/// PSNR and SSIM exactly as the reference computes them (eval-spec §5): uint8 NHWC inputs converted per batch by
/// <c>utils.to_torch_tensor</c> (÷255 only when the batch's max exceeds 1), PSNR per image over C·H·W with the mse
/// clamped at 1e-10, and torchmetrics' SSIM (Gaussian window 11, σ 1.5, reflect padding, no border crop, data range 1).
/// </summary>
public static class ReconstructionMetrics
{
    public const double SsimSigma = 1.5;
    public const double SsimK1 = 0.01;
    public const double SsimK2 = 0.03;
    public const double MinimumMse = 1e-10;

    /// <summary>torchmetrics' window size for a Gaussian window: int(3.5σ + 0.5)·2 + 1 = 11 (its kernel_size argument is ignored).</summary>
    public static int SsimWindowSize => (int)(3.5 * SsimSigma + 0.5) * 2 + 1;

    /// <summary>
    /// Scores a reconstruction against its reference, pairing images by index, in batches of <paramref name="batchSize"/>
    /// (the batch size matters: the ÷255 decision is taken per batch slice, separately for each array).
    /// </summary>
    public static ReconstructionScores Evaluate(Tensor referenceNhwc, Tensor reconstructionNhwc, int batchSize)
    {
        ValidatePair(referenceNhwc, reconstructionNhwc);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        var count = referenceNhwc.shape[0];
        var mse = new List<float>();
        var psnr = new List<float>();
        var ssim = new List<float>();
        var referenceDivided = new List<bool>();
        var reconstructionDivided = new List<bool>();
        for (long start = 0; start < count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var end = Math.Min(start + batchSize, count);
            var reference = ToUnitRange(referenceNhwc.narrow(0, start, end - start), out var dividedReference);
            var reconstruction = ToUnitRange(reconstructionNhwc.narrow(0, start, end - start), out var dividedReconstruction);
            var batchMse = MeanSquaredErrorPerImage(reference, reconstruction);
            mse.AddRange(batchMse.data<float>().ToArray());
            psnr.AddRange(PsnrFromMse(batchMse).data<float>().ToArray());
            ssim.AddRange(SsimPerImage(reference, reconstruction).data<float>().ToArray());
            referenceDivided.AddRange(Enumerable.Repeat(dividedReference, (int)(end - start)));
            reconstructionDivided.AddRange(Enumerable.Repeat(dividedReconstruction, (int)(end - start)));
        }
        return new ReconstructionScores(Float32Mean(psnr), Float32Mean(ssim), [.. mse], [.. psnr], [.. ssim], [.. referenceDivided], [.. reconstructionDivided]);
    }

    /// <summary>
    /// <c>utils.to_torch_tensor</c>: NHWC → NCHW float32, divided by 255 only if the slice's max is above 1 (a batch of
    /// 0/1 values is taken as already in [0, 1]).
    /// </summary>
    public static Tensor ToUnitRange(Tensor nhwc, out bool dividedBy255)
    {
        if (nhwc.dim() != 4) throw new ArgumentException($"images must be NHWC [N, H, W, C], got [{string.Join(", ", nhwc.shape)}]", nameof(nhwc));
        using var scope = NewDisposeScope();
        var images = nhwc.permute(0, 3, 1, 2).to(ScalarType.Float32);
        dividedBy255 = images.max().item<float>() > 1f;
        return (dividedBy255 ? images / 255.0 : images.clone()).MoveToOuterDisposeScope();
    }

    /// <summary>mean((a − b)²) over C, H, W of each image, float32 [N].</summary>
    public static Tensor MeanSquaredErrorPerImage(Tensor reference, Tensor reconstruction)
    {
        using var scope = NewDisposeScope();
        var difference = reference - reconstruction;
        return (difference * difference).mean([1, 2, 3]).MoveToOuterDisposeScope();
    }

    /// <summary>20·log10(1/sqrt(max(mse, 1e-10))), float32: identical images give 100 dB.</summary>
    public static Tensor PsnrFromMse(Tensor mse)
    {
        using var scope = NewDisposeScope();
        return (20 * (1.0 / mse.clamp_min(MinimumMse).sqrt()).log10()).MoveToOuterDisposeScope();
    }

    /// <summary>The mean SSIM of each image over its whole map and all channels, float32 [N].</summary>
    public static Tensor SsimPerImage(Tensor reference, Tensor reconstruction)
    {
        using var scope = NewDisposeScope();
        var map = SsimMap(reference, reconstruction);
        return map.reshape(map.shape[0], -1).mean([1]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// torchmetrics' full SSIM map [N, C, H, W] (its <c>return_full_image</c>) with data range 1: both images reflect-padded
    /// by 5, one grouped convolution over [x, y, x², y², xy], variances clamped at 0, the covariance not.
    /// </summary>
    public static Tensor SsimMap(Tensor reference, Tensor reconstruction)
    {
        if (!reference.shape.SequenceEqual(reconstruction.shape))
            throw new ArgumentException($"SSIM needs images of one shape: [{string.Join(", ", reference.shape)}] and [{string.Join(", ", reconstruction.shape)}]");
        var pad = (SsimWindowSize - 1) / 2;
        if (reference.dim() != 4 || reference.shape[2] <= pad || reference.shape[3] <= pad)
            throw new ArgumentException($"SSIM needs NCHW images of at least {pad + 1}x{pad + 1} (reflect padding by {pad}), got [{string.Join(", ", reference.shape)}]");
        using var scope = NewDisposeScope();
        var channels = reference.shape[1];
        var batch = reference.shape[0];
        // torchmetrics names the reconstruction "preds" and the reference "target"; the formula is symmetric.
        var preds = nn.functional.pad(reconstruction, [pad, pad, pad, pad], TorchSharp.PaddingModes.Reflect);
        var target = nn.functional.pad(reference, [pad, pad, pad, pad], TorchSharp.PaddingModes.Reflect);
        var window = GaussianWindow(channels);
        var inputs = cat([preds, target, preds * preds, target * target, preds * target]);
        var outputs = nn.functional.conv2d(inputs, window, groups: channels).split(batch);
        var muPredSquared = outputs[0].pow(2);
        var muTargetSquared = outputs[1].pow(2);
        var muPredTarget = outputs[0] * outputs[1];
        var sigmaPredSquared = (outputs[2] - muPredSquared).clamp_min(0.0);
        var sigmaTargetSquared = (outputs[3] - muTargetSquared).clamp_min(0.0);
        var sigmaPredTarget = outputs[4] - muPredTarget;
        var c1 = Math.Pow(SsimK1 * 1.0, 2);
        var c2 = Math.Pow(SsimK2 * 1.0, 2);
        var upper = 2 * sigmaPredTarget + c2;
        var lower = sigmaPredSquared + sigmaTargetSquared + c2;
        return ((2 * muPredTarget + c1) * upper / ((muPredSquared + muTargetSquared + c1) * lower)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// torchmetrics' <c>_gaussian_kernel_2d</c> in float32: the outer product of two normalised 1-D Gaussians at offsets
    /// −5..5, expanded to [channels, 1, 11, 11] for a grouped convolution.
    /// </summary>
    public static Tensor GaussianWindow(long channels)
    {
        using var scope = NewDisposeScope();
        var size = SsimWindowSize;
        var offsets = arange((1 - size) / 2.0, (1 + size) / 2.0, 1.0, dtype: ScalarType.Float32);
        var gauss = (-(offsets / SsimSigma).pow(2) / 2).exp();
        var normalised = (gauss / gauss.sum()).unsqueeze(0);
        var kernel = normalised.t().matmul(normalised);
        return kernel.expand(channels, 1, size, size).contiguous().MoveToOuterDisposeScope();
    }

    private static float Float32Mean(List<float> values)
    {
        using var scope = NewDisposeScope();
        return tensor(values.ToArray()).mean().item<float>();
    }

    private static void ValidatePair(Tensor reference, Tensor reconstruction)
    {
        if (reference.dim() != 4 || reference.shape[3] != 3)
            throw new ArgumentException($"reference images must be NHWC with 3 channels, got [{string.Join(", ", reference.shape)}]");
        if (!reference.shape.SequenceEqual(reconstruction.shape))
            throw new ArgumentException(
                $"reference [{string.Join(", ", reference.shape)}] and reconstruction [{string.Join(", ", reconstruction.shape)}] must have the same shape (images are paired by index)");
        if (reference.shape[0] == 0) throw new ArgumentException("no images to score");
    }
}
