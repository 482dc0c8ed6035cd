using System.Buffers.Binary;
using System.IO.Compression;
using RAE.Models.IO;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Models.Tests.Data;

/// <summary>Tiny generated images, hostile files and IDX files for the data tests.</summary>
internal static class TestImages
{
    public static byte[] Png(int width, int height, byte seed = 0)
    {
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
            image[x, y] = new Rgb24((byte)(x * 17 + seed), (byte)(y * 29 + seed), (byte)(x * y + seed));
        return Save(image, new PngEncoder());
    }

    public static byte[] GrayPng(int width, int height, Func<int, int, byte> value)
    {
        using var image = new Image<L8>(width, height);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
            image[x, y] = new L8(value(x, y));
        return Save(image, new PngEncoder { ColorType = PngColorType.Grayscale });
    }

    public static byte[] PalettePng(int width, int height)
    {
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
            image[x, y] = (x + y) % 2 == 0 ? new Rgb24(255, 0, 0) : new Rgb24(0, 0, 255);
        return Save(image, new PngEncoder { ColorType = PngColorType.Palette });
    }

    public static byte[] Jpeg(int width, int height)
    {
        using var image = new Image<Rgb24>(width, height, new Rgb24(90, 140, 200));
        return Save(image, new JpegEncoder { Quality = 90 });
    }

    /// <summary>A JPEG start-of-image marker followed by garbage.</summary>
    public static byte[] CorruptJpeg()
    {
        var bytes = new byte[600];
        new Random(5).NextBytes(bytes);
        bytes[0] = 0xFF;
        bytes[1] = 0xD8;
        bytes[2] = 0xFF;
        return bytes;
    }

    public static byte[] TruncatedPng() => Png(32, 32)[..60];

    /// <summary>A valid PNG signature and IHDR claiming width x height (CRC correct), then IEND: no pixel data at all.</summary>
    public static byte[] HugeHeaderPng(int width, int height)
    {
        var ihdr = new byte[17];
        "IHDR"u8.CopyTo(ihdr);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(8), height);
        ihdr[12] = 8; // bit depth
        ihdr[13] = 2; // truecolour
        using var output = new MemoryStream();
        output.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, 13);
        output.Write(word);
        output.Write(ihdr);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.Compute(ihdr));
        output.Write(word);
        BinaryPrimitives.WriteInt32BigEndian(word, 0);
        output.Write(word);
        output.Write("IEND"u8);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.Compute("IEND"u8));
        output.Write(word);
        return output.ToArray();
    }

    public static byte[] Text(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    public static string TemporaryFolder()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"rae-data-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>Writes <c>{prefix}-images-idx3-ubyte[.gz]</c> and the labels beside it; pixel (r, c) of image i is (i·7 + r·3 + c) mod 256.</summary>
    public static void WriteIdx(string folder, string prefix, int count, int rows, int columns, Func<int, byte> label, bool gzip)
    {
        var images = new byte[16 + count * rows * columns];
        BinaryPrimitives.WriteInt32BigEndian(images, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(12), columns);
        for (var i = 0; i < count; i++)
        for (var r = 0; r < rows; r++)
        for (var c = 0; c < columns; c++)
            images[16 + (i * rows + r) * columns + c] = IdxPixel(i, r, c);
        var labels = new byte[8 + count];
        BinaryPrimitives.WriteInt32BigEndian(labels, 0x801);
        BinaryPrimitives.WriteInt32BigEndian(labels.AsSpan(4), count);
        for (var i = 0; i < count; i++) labels[8 + i] = label(i);
        WriteMaybeGzip(Path.Combine(folder, $"{prefix}-images-idx3-ubyte"), images, gzip);
        WriteMaybeGzip(Path.Combine(folder, $"{prefix}-labels-idx1-ubyte"), labels, gzip);
    }

    public static byte IdxPixel(int image, int row, int column) => (byte)((image * 7 + row * 3 + column) % 256);

    private static void WriteMaybeGzip(string path, byte[] bytes, bool gzip)
    {
        if (!gzip)
        {
            File.WriteAllBytes(path, bytes);
            return;
        }
        using var file = File.Create(path + ".gz");
        using var compressed = new GZipStream(file, CompressionLevel.Fastest);
        compressed.Write(bytes);
    }

    private static byte[] Save(Image image, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
    {
        using var output = new MemoryStream();
        image.Save(output, encoder);
        return output.ToArray();
    }
}
