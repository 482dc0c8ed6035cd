using System.Buffers.Binary;
using System.IO.Compression;
using RAE.Models.Data;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Pbm;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Models.Tests.Fuzzing;

/// <summary>
/// The image readers under fuzzing: <see cref="SafeImageDecoder"/> (the decode path of <c>rae datasets add</c>, the
/// Stage 1 image stream and evaluation), image shards (<see cref="ImageShard.Read"/>, then every stored image decoded,
/// as the encode job does) and MNIST-style IDX files (<see cref="IdxImageSource"/>, every image enumerated).
/// </summary>
internal static class ImageFuzzTargets
{
    private const int Width = 16;
    private const int Height = 12;

    public static IEnumerable<FuzzTarget> All(string workFolder)
    {
        yield return Images();
        yield return Shards();
        yield return Idx(workFolder);
    }

    /// <summary>The decoder documents that it never throws for bad content: a refusal is a result with its reason.</summary>
    private static FuzzTarget Images()
    {
        var decoder = new SafeImageDecoder();
        return new FuzzTarget("images", EncodedSeeds(), bytes => DecodeOrThrowRefusal(decoder, bytes),
            error => error is ImageRefusedException, "a refused DecodeResult (the decoder itself never throws)");
    }

    private static FuzzTarget Shards()
    {
        var decoder = new SafeImageDecoder();
        var encoded = EncodedSeeds();
        byte[][] seeds =
        [
            ImageShard.Write([new("a.png", 0, encoded[0]), new("b.jpg", 3, encoded[2]), new("c.gif", 1, encoded[3])]),
            ImageShard.Write([new("only.bmp", 7, encoded[4])]),
        ];
        return new FuzzTarget("image-shards", seeds, bytes =>
        {
            foreach (var image in ImageShard.Read(bytes, "fuzz shard")) DecodeOrThrowRefusal(decoder, image.Encoded);
        }, error => error is InvalidDataException or ImageRefusedException, "InvalidDataException, or a refused DecodeResult for a stored image");
    }

    /// <summary>Mutates the images file (raw or gzip); the labels file beside it is valid and holds as many labels.</summary>
    private static FuzzTarget Idx(string workFolder)
    {
        var folder = Directory.CreateDirectory(Path.Combine(workFolder, "idx")).FullName;
        const int count = 4;
        var images = IdxFile(0x803, [count, 5, 6], Enumerable.Range(0, count * 30).Select(i => (byte)(i * 7)).ToArray());
        File.WriteAllBytes(Path.Combine(folder, "train-labels-idx1-ubyte"), IdxFile(0x801, [count], [0, 1, 2, 1]));
        var imagesPath = Path.Combine(folder, "train-images-idx3-ubyte");
        return new FuzzTarget("idx", [images, Gzip(images)], bytes =>
        {
            File.WriteAllBytes(imagesPath, bytes);
            var source = IdxImageSource.Open(imagesPath);
            foreach (var image in source.Images()) _ = image.ReadBytes();
        }, error => error is InvalidDataException, nameof(InvalidDataException));
    }

    private static void DecodeOrThrowRefusal(SafeImageDecoder decoder, byte[] encoded)
    {
        var result = decoder.Decode(encoded);
        if (!result.Succeeded) throw new ImageRefusedException(result.Failure!);
        var image = result.Image!;
        if (image.Pixels.Length != (long)image.Width * image.Height * 3)
            throw new InvalidOperationException($"a decoded {image.Width}x{image.Height} image holds {image.Pixels.Length} bytes");
    }

    /// <summary>One small image in every format the decoder allows: PNG (RGB and palette), JPEG, GIF, BMP, TIFF, WebP (lossy and lossless), PBM.</summary>
    private static byte[][] EncodedSeeds()
    {
        using var image = new Image<Rgb24>(Width, Height);
        for (var y = 0; y < Height; y++)
            for (var x = 0; x < Width; x++)
                image[x, y] = new Rgb24((byte)(x * 16), (byte)(y * 20), (byte)((x + y) * 9));
        IImageEncoder[] encoders =
        [
            new PngEncoder(),
            new PngEncoder { ColorType = PngColorType.Palette },
            new JpegEncoder { Quality = 75 },
            new GifEncoder(),
            new BmpEncoder(),
            new TiffEncoder(),
            new WebpEncoder { FileFormat = WebpFileFormatType.Lossy },
            new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
            new PbmEncoder(),
        ];
        return encoders.Select(encoder =>
        {
            using var output = new MemoryStream();
            image.Save(output, encoder);
            return output.ToArray();
        }).ToArray();
    }

    private static byte[] IdxFile(int magic, int[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (var d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * d), dims[d]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    private static byte[] Gzip(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true)) gzip.Write(bytes);
        return output.ToArray();
    }
}

/// <summary>A <see cref="SafeImageDecoder"/> refusal turned into an exception so the fuzz runner can count it.</summary>
public sealed class ImageRefusedException(string reason) : Exception(reason);
