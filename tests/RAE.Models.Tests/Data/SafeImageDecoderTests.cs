using RAE.Models.Data;

namespace RAE.Models.Tests.Data;

public sealed class SafeImageDecoderTests
{
    private readonly SafeImageDecoder _decoder = new();

    [Fact]
    public void Decodes_an_rgb_png_pixel_for_pixel()
    {
        var result = _decoder.Decode(TestImages.Png(5, 4, seed: 3));

        Assert.True(result.Succeeded, result.Failure);
        Assert.Equal("PNG", result.Format);
        Assert.Equal((5, 4), (result.Image!.Width, result.Image.Height));
        Assert.Equal(4 * 17 + 3, result.Image[4, 2, 0]);
        Assert.Equal(2 * 29 + 3, result.Image[4, 2, 1]);
        Assert.Equal(4 * 2 + 3, result.Image[4, 2, 2]);
    }

    [Fact]
    public void Grayscale_becomes_rgb_with_the_value_in_every_channel()
    {
        var result = _decoder.Decode(TestImages.GrayPng(3, 2, (x, y) => (byte)(10 * x + 100 * y)));

        Assert.True(result.Succeeded, result.Failure);
        for (var channel = 0; channel < 3; channel++) Assert.Equal(120, result.Image![2, 1, channel]);
    }

    [Fact]
    public void Palette_becomes_rgb()
    {
        var result = _decoder.Decode(TestImages.PalettePng(4, 4));

        Assert.True(result.Succeeded, result.Failure);
        Assert.Equal(new byte[] { 255, 0, 0 }, new[] { result.Image![0, 0, 0], result.Image[0, 0, 1], result.Image[0, 0, 2] });
        Assert.Equal(new byte[] { 0, 0, 255 }, new[] { result.Image[1, 0, 0], result.Image[1, 0, 1], result.Image[1, 0, 2] });
    }

    [Fact]
    public void Decodes_a_jpeg()
    {
        var result = _decoder.Decode(TestImages.Jpeg(16, 8));

        Assert.True(result.Succeeded, result.Failure);
        Assert.Equal("JPEG", result.Format);
        Assert.InRange(result.Image![7, 3, 2], 190, 210);
    }

    [Fact]
    public void Refuses_hostile_and_broken_files_with_a_reason()
    {
        AssertRefused([], "empty");
        AssertRefused(TestImages.Text("just some notes, not an image"), "not a recognised image format");
        AssertRefused(TestImages.HugeHeaderPng(30000, 30000), "900000000 pixels exceeds");
        AssertRefused(TestImages.TruncatedPng(), "");
        AssertRefused(TestImages.CorruptJpeg(), "");
    }

    [Fact]
    public void Enforces_byte_pixel_and_format_limits()
    {
        var png = TestImages.Png(8, 8);
        Assert.Contains("encoded bytes", new SafeImageDecoder(new ImageDecodeLimits { MaxEncodedBytes = 10 }).Decode(png).Failure);
        Assert.Contains("exceeds the limit of 63", new SafeImageDecoder(new ImageDecodeLimits { MaxPixels = 63 }).Decode(png).Failure);
        var jpegOnly = new SafeImageDecoder(new ImageDecodeLimits { AllowedFormats = new HashSet<string> { "JPEG" } });
        Assert.Contains("format PNG is not allowed", jpegOnly.Decode(png).Failure);
    }

    [Fact]
    public void Rejects_unusable_limits()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SafeImageDecoder(new ImageDecodeLimits { DecodeTimeout = TimeSpan.Zero }));
        Assert.Throws<ArgumentException>(() => new SafeImageDecoder(new ImageDecodeLimits { AllowedFormats = new HashSet<string>() }));
    }

    private void AssertRefused(byte[] bytes, string reasonContains)
    {
        var result = _decoder.Decode(bytes);
        Assert.False(result.Succeeded, $"expected a refusal containing '{reasonContains}'");
        Assert.False(string.IsNullOrWhiteSpace(result.Failure));
        Assert.Contains(reasonContains, result.Failure);
    }
}
