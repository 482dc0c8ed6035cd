namespace RAE.Models.Data;

/// <summary>The PIL resampling filters the reference's transforms use.</summary>
public enum PilFilter
{
    Box,
    Bilinear,
    Bicubic,
}

/// <summary>
/// <c>PIL.Image.resize</c> for 8-bit RGB images, reproduced operation for operation from Pillow's Resample.c: area-aware
/// filters whose support widens with the downscale factor, coefficients normalised per output pixel and rounded to
/// 22-bit fixed point, a horizontal pass clipped to bytes, then a vertical pass. Matching this bit for bit is what makes
/// the ADM center crop (spec §9.3) and the Stage 1 resize (§4.2) produce the reference's pixels.
/// </summary>
public static class PilResample
{
    private const int PrecisionBits = 32 - 8 - 2;

    public static RgbImage Resize(RgbImage source, int width, int height, PilFilter filter)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentOutOfRangeException(nameof(width), $"resize target must be positive, got {width}x{height}");
        if (width == source.Width && height == source.Height)
            return new RgbImage(width, height, (byte[])source.Pixels.Clone());

        var horizontal = Coefficients.For(source.Width, width, filter);
        var vertical = Coefficients.For(source.Height, height, filter);
        var current = source;
        var firstRow = 0;
        if (width != source.Width)
        {
            // Only the rows the vertical pass reads are resampled horizontally (Resample.c's ybox_first/ybox_last).
            var lastRow = height != source.Height ? vertical.Start[height - 1] + vertical.Count[height - 1] : source.Height;
            firstRow = height != source.Height ? vertical.Start[0] : 0;
            current = ResampleHorizontal(current, firstRow, lastRow - firstRow, horizontal);
        }
        if (height != source.Height)
            current = ResampleVertical(current, firstRow, vertical);
        return current;
    }

    private static RgbImage ResampleHorizontal(RgbImage input, int firstRow, int rows, Coefficients coefficients)
    {
        var outWidth = coefficients.Start.Length;
        var output = new byte[outWidth * rows * 3];
        var source = input.Pixels;
        for (var y = 0; y < rows; y++)
        {
            var rowOffset = (y + firstRow) * input.Width * 3;
            for (var x = 0; x < outWidth; x++)
            {
                int red = 1 << (PrecisionBits - 1), green = red, blue = red;
                var start = coefficients.Start[x];
                var weights = coefficients.WeightRow(x);
                for (var k = 0; k < weights.Length; k++)
                {
                    var at = rowOffset + (start + k) * 3;
                    red += source[at] * weights[k];
                    green += source[at + 1] * weights[k];
                    blue += source[at + 2] * weights[k];
                }
                var to = (y * outWidth + x) * 3;
                output[to] = Clip8(red);
                output[to + 1] = Clip8(green);
                output[to + 2] = Clip8(blue);
            }
        }
        return new RgbImage(outWidth, rows, output);
    }

    private static RgbImage ResampleVertical(RgbImage input, int rowShift, Coefficients coefficients)
    {
        var outHeight = coefficients.Start.Length;
        var width = input.Width;
        var output = new byte[width * outHeight * 3];
        var source = input.Pixels;
        for (var y = 0; y < outHeight; y++)
        {
            var start = coefficients.Start[y] - rowShift;
            var weights = coefficients.WeightRow(y);
            for (var x = 0; x < width; x++)
            {
                int red = 1 << (PrecisionBits - 1), green = red, blue = red;
                for (var k = 0; k < weights.Length; k++)
                {
                    var at = ((start + k) * width + x) * 3;
                    red += source[at] * weights[k];
                    green += source[at + 1] * weights[k];
                    blue += source[at + 2] * weights[k];
                }
                var to = (y * width + x) * 3;
                output[to] = Clip8(red);
                output[to + 1] = Clip8(green);
                output[to + 2] = Clip8(blue);
            }
        }
        return new RgbImage(width, outHeight, output);
    }

    private static byte Clip8(int accumulated)
    {
        var value = accumulated >> PrecisionBits;
        return (byte)(value < 0 ? 0 : value > 255 ? 255 : value);
    }

    private static double FilterSupport(PilFilter filter) => filter switch
    {
        PilFilter.Box => 0.5,
        PilFilter.Bilinear => 1.0,
        PilFilter.Bicubic => 2.0,
        _ => throw new ArgumentOutOfRangeException(nameof(filter), filter, "unknown PIL filter"),
    };

    private static double FilterValue(PilFilter filter, double x)
    {
        switch (filter)
        {
            case PilFilter.Box:
                return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
            case PilFilter.Bilinear:
                x = Math.Abs(x);
                return x < 1.0 ? 1.0 - x : 0.0;
            default:
                const double a = -0.5;
                x = Math.Abs(x);
                if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
                if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
                return 0.0;
        }
    }

    /// <summary>Resample.c's precompute_coeffs + normalize_coeffs_8bpc for one axis (whole-image box).</summary>
    private sealed class Coefficients
    {
        private readonly int[] _weights;
        private readonly int _kernelSize;

        private Coefficients(int[] start, int[] count, int[] weights, int kernelSize)
        {
            Start = start;
            Count = count;
            _weights = weights;
            _kernelSize = kernelSize;
        }

        public int[] Start { get; }

        public int[] Count { get; }

        public ReadOnlySpan<int> WeightRow(int output) => _weights.AsSpan(output * _kernelSize, Count[output]);

        public static Coefficients For(int inSize, int outSize, PilFilter filter)
        {
            var scale = (double)inSize / outSize;
            var filterScale = Math.Max(scale, 1.0);
            var support = FilterSupport(filter) * filterScale;
            var kernelSize = (int)Math.Ceiling(support) * 2 + 1;
            var start = new int[outSize];
            var count = new int[outSize];
            var weights = new int[outSize * kernelSize];
            var raw = new double[kernelSize];
            for (var output = 0; output < outSize; output++)
            {
                var center = (output + 0.5) * scale;
                var inverseScale = 1.0 / filterScale;
                var min = Math.Max((int)(center - support + 0.5), 0);
                var max = Math.Min((int)(center + support + 0.5), inSize) - min;
                var total = 0.0;
                for (var k = 0; k < max; k++)
                {
                    raw[k] = FilterValue(filter, (k + min - center + 0.5) * inverseScale);
                    total += raw[k];
                }
                for (var k = 0; k < max; k++)
                {
                    var normalised = total != 0.0 ? raw[k] / total : raw[k];
                    var fixedPoint = normalised * (1 << PrecisionBits);
                    weights[output * kernelSize + k] = normalised < 0 ? (int)(-0.5 + fixedPoint) : (int)(0.5 + fixedPoint);
                }
                start[output] = min;
                count[output] = max;
            }
            return new Coefficients(start, count, weights, kernelSize);
        }
    }
}
