using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>
/// An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B (PIL's "RGB" mode). All dataset transforms work on
/// this type so that they can reproduce PIL's integer arithmetic exactly before anything becomes a float tensor.
/// </summary>
public sealed class RgbImage
{
    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentOutOfRangeException(nameof(width), $"image size must be positive, got {width}x{height}");
        if (pixels.Length != (long)width * height * 3)
            throw new ArgumentException($"a {width}x{height} RGB image needs {(long)width * height * 3} bytes, got {pixels.Length}", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Interleaved RGB bytes, <c>Height * Width * 3</c> of them.</summary>
    public byte[] Pixels { get; }

    public static RgbImage Filled(int width, int height, byte red, byte green, byte blue)
    {
        var pixels = new byte[width * height * 3];
        for (var i = 0; i < pixels.Length; i += 3)
        {
            pixels[i] = red;
            pixels[i + 1] = green;
            pixels[i + 2] = blue;
        }
        return new RgbImage(width, height, pixels);
    }

    /// <summary>A grayscale image as RGB with the value repeated in every channel (PIL's <c>convert("RGB")</c> from "L").</summary>
    public static RgbImage FromGray(int width, int height, ReadOnlySpan<byte> gray)
    {
        if (gray.Length != width * height)
            throw new ArgumentException($"a {width}x{height} grayscale image needs {width * height} bytes, got {gray.Length}", nameof(gray));
        var pixels = new byte[gray.Length * 3];
        for (var i = 0; i < gray.Length; i++)
        {
            pixels[3 * i] = gray[i];
            pixels[3 * i + 1] = gray[i];
            pixels[3 * i + 2] = gray[i];
        }
        return new RgbImage(width, height, pixels);
    }

    public byte this[int x, int y, int channel] => Pixels[(y * Width + x) * 3 + channel];

    /// <summary>The <paramref name="width"/> x <paramref name="height"/> window whose top-left corner is (<paramref name="left"/>, <paramref name="top"/>).</summary>
    public RgbImage Crop(int left, int top, int width, int height)
    {
        if (left < 0 || top < 0 || width <= 0 || height <= 0 || left + width > Width || top + height > Height)
            throw new ArgumentOutOfRangeException(nameof(left),
                $"crop ({left}, {top}) {width}x{height} does not fit inside the {Width}x{Height} image");
        var pixels = new byte[width * height * 3];
        for (var row = 0; row < height; row++)
            Array.Copy(Pixels, ((top + row) * Width + left) * 3, pixels, row * width * 3, width * 3);
        return new RgbImage(width, height, pixels);
    }

    public RgbImage FlipHorizontal()
    {
        var pixels = new byte[Pixels.Length];
        for (var y = 0; y < Height; y++)
        for (var x = 0; x < Width; x++)
        {
            var from = (y * Width + x) * 3;
            var to = (y * Width + (Width - 1 - x)) * 3;
            pixels[to] = Pixels[from];
            pixels[to + 1] = Pixels[from + 1];
            pixels[to + 2] = Pixels[from + 2];
        }
        return new RgbImage(Width, Height, pixels);
    }

    /// <summary>torchvision's <c>ToTensor</c>: float32 <c>[3, H, W]</c> in [0, 1] (byte / 255).</summary>
    public Tensor ToTensor()
    {
        using var scope = NewDisposeScope();
        using var hwc = tensor(Pixels, ScalarType.Byte).reshape(Height, Width, 3);
        var chw = hwc.permute(2, 0, 1).to(ScalarType.Float32).div_(255f).contiguous();
        return chw.MoveToOuterDisposeScope();
    }
}
