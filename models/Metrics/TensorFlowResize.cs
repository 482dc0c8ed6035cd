using static TorchSharp.torch;

namespace RAE.Models.Metrics;

/// <summary>
/// Legacy TensorFlow 1 <c>resize_bilinear</c> (align_corners=False, no half-pixel offset, no antialiasing), as
/// torch-fidelity's <c>interpolate_bilinear_2d_like_tensorflow1x</c> (method 'slow') computes it in float32 (eval-spec §3.1).
/// </summary>
public static class TensorFlowResize
{
    /// <summary>Resizes float NCHW images to [N, C, height, width]: first along the width, then along the height.</summary>
    public static Tensor Bilinear(Tensor images, int height, int width)
    {
        if (images.dim() != 4) throw new ArgumentException($"images must be NCHW, got [{string.Join(", ", images.shape)}]", nameof(images));
        if (!images.is_floating_point()) throw new ArgumentException($"images must be floating point, got {images.dtype}", nameof(images));
        if (height <= 0 || width <= 0) throw new ArgumentOutOfRangeException(nameof(height), $"output size {height}x{width} must be positive");
        using var scope = NewDisposeScope();
        var (yLo, yHi, fy) = Grid(images.shape[2], height, images.device);
        var (xLo, xHi, fx) = Grid(images.shape[3], width, images.device);
        var rowsLo = images.index_select(2, yLo);
        var rowsHi = images.index_select(2, yHi);
        var in00 = rowsLo.index_select(3, xLo);
        var in01 = rowsLo.index_select(3, xHi);
        var in10 = rowsHi.index_select(3, xLo);
        var in11 = rowsHi.index_select(3, xHi);
        var dx = fx.to(images.dtype).view(1, 1, 1, width);
        var dy = fy.to(images.dtype).view(1, 1, height, 1);
        var top = in00 + (in01 - in00) * dx;
        var bottom = in10 + (in11 - in10) * dx;
        return (top + (bottom - top) * dy).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Source positions of one axis: <c>src[i] = float32(i) · float32(n / out)</c> (a float32 product, as torch multiplies
    /// an integer arange by a Python float), <c>lo = floor(src)</c>, <c>hi = min(lo + 1, n − 1)</c>, <c>frac = src − lo</c>.
    /// </summary>
    private static (Tensor Lo, Tensor Hi, Tensor Fraction) Grid(long inputLength, int outputLength, Device device)
    {
        var scale = (float)((double)inputLength / outputLength);
        var lo = new long[outputLength];
        var hi = new long[outputLength];
        var fraction = new float[outputLength];
        for (var i = 0; i < outputLength; i++)
        {
            var source = (float)i * scale;
            lo[i] = (long)source;
            hi[i] = Math.Min(lo[i] + 1, inputLength - 1);
            fraction[i] = source - lo[i];
        }
        return (tensor(lo, device: device), tensor(hi, device: device), tensor(fraction, device: device));
    }
}
