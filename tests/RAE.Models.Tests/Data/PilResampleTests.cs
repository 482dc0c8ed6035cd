using RAE.Models.Data;

namespace RAE.Models.Tests.Data;

/// <summary>
/// Expected pixels are Pillow's own accuracy cases (Tests/test_image_resample.py, TestImagingCoreResampleAccuracy):
/// a two-tone checker (0xE1 in the top-left and bottom-right quadrants, 0x1E elsewhere) resized by each filter.
/// </summary>
public sealed class PilResampleTests
{
    [Theory]
    [InlineData(PilFilter.Box, 8, 4, "e1 e1 e1 e1")]
    [InlineData(PilFilter.Bilinear, 8, 4, "e1 c9 c9 b7")]
    [InlineData(PilFilter.Bicubic, 12, 6, "e1 e3 d4 e3 e5 d6 d4 d6 c9")]
    [InlineData(PilFilter.Box, 2, 4, "e1 e1 e1 e1")]
    [InlineData(PilFilter.Bilinear, 2, 4, "e1 b0 b0 98")]
    [InlineData(PilFilter.Bicubic, 4, 8, "e1 e5 ee b9 e5 e9 f3 bc ee f3 fd c1 b9 bc c1 a2")]
    public void Matches_pillow_accuracy_cases(PilFilter filter, int inSize, int outSize, string quadrant)
    {
        var resized = PilResample.Resize(Checker(inSize, 0xE1), outSize, outSize, filter);

        var expected = Sample(quadrant, outSize);
        for (var y = 0; y < outSize; y++)
        for (var x = 0; x < outSize; x++)
        for (var channel = 0; channel < 3; channel++)
            Assert.True(expected[y, x] == resized[x, y, channel],
                $"{filter} {inSize}->{outSize}: pixel ({x},{y}) channel {channel} is {resized[x, y, channel]:x2}, Pillow gives {expected[y, x]:x2}");
    }

    [Fact]
    public void Box_upscale_keeps_a_flat_colour_exactly()
    {
        var resized = PilResample.Resize(RgbImage.Filled(8, 8, 0x16, 0x88, 0xFF), 100, 100, PilFilter.Box);

        Assert.Equal(RgbImage.Filled(100, 100, 0x16, 0x88, 0xFF).Pixels, resized.Pixels);
    }

    [Fact]
    public void Bicubic_downscale_keeps_a_flat_colour_exactly()
    {
        var resized = PilResample.Resize(RgbImage.Filled(1280, 1280, 0x20, 0x40, 0x60), 256, 256, PilFilter.Bicubic);

        Assert.Equal(RgbImage.Filled(256, 256, 0x20, 0x40, 0x60).Pixels, resized.Pixels);
    }

    [Fact]
    public void Very_wide_bicubic_reduction_splits_a_half_lit_row_in_half()
    {
        for (var width = 400000; width < 400010; width += 2)
        {
            var gray = new byte[width];
            Array.Fill(gray, (byte)254, 0, width / 2);
            var resized = PilResample.Resize(RgbImage.FromGray(width, 1, gray), 5, 1, PilFilter.Bicubic);
            Assert.Equal(127, resized[2, 0, 0]);
        }
    }

    [Fact]
    public void Same_size_returns_an_independent_copy()
    {
        var image = Checker(4, 0xE1);

        var copy = PilResample.Resize(image, 4, 4, PilFilter.Bicubic);

        Assert.Equal(image.Pixels, copy.Pixels);
        Assert.NotSame(image.Pixels, copy.Pixels);
    }

    [Fact]
    public void Box_halving_rounds_each_pass_half_up()
    {
        // 2x2 block (10, 11 / 20, 21): horizontal pass gives round-half-up(10.5)=11 and (20.5)=21, vertical (11+21)/2 = 16.
        var image = RgbImage.FromGray(2, 2, [10, 11, 20, 21]);

        var halved = PilResample.Resize(image, 1, 1, PilFilter.Box);

        Assert.Equal(16, halved[0, 0, 0]);
    }

    [Fact]
    public void Rejects_an_empty_target()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => PilResample.Resize(Checker(4, 0xE1), 0, 3, PilFilter.Box));
        Assert.Contains("0x3", error.Message);
    }

    internal static RgbImage Checker(int size, byte color)
    {
        var gray = new byte[size * size];
        for (var y = 0; y < size; y++)
        for (var x = 0; x < size; x++)
        {
            var bright = (x < size / 2 && y < size / 2) || (x >= size / 2 && y >= size / 2);
            gray[y * size + x] = bright ? color : (byte)(255 - color);
        }
        return RgbImage.FromGray(size, size, gray);
    }

    /// <summary>Pillow's make_sample: the top-left quadrant given, the rest mirrored (and inverted off the diagonal).</summary>
    private static byte[,] Sample(string quadrant, int size)
    {
        var values = quadrant.Split(' ').Select(hex => Convert.ToByte(hex, 16)).ToArray();
        var half = size / 2;
        var sample = new byte[size, size];
        for (var y = 0; y < half; y++)
        for (var x = 0; x < half; x++)
        {
            var value = values[y * half + x];
            sample[y, x] = value;
            sample[size - y - 1, size - x - 1] = value;
            sample[size - y - 1, x] = (byte)(255 - value);
            sample[y, size - x - 1] = (byte)(255 - value);
        }
        return sample;
    }
}
