using System.Buffers.Binary;
using System.IO.Compression;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Models.Data;

/// <summary>
/// MNIST-style IDX files: <c>*-images-idx3-ubyte[.gz]</c> (unsigned bytes, [n, rows, cols]) with
/// <c>*-labels-idx1-ubyte[.gz]</c> ([n]). Each image is offered as a lossless grayscale PNG, which is what torchvision's
/// MNIST datasets hand to their transforms (<c>Image.fromarray(img, mode="L")</c>); the classes are the label values.
/// </summary>
public sealed class IdxImageSource : IImageSource
{
    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;
    private const int InitialDataBuffer = 1 << 20;

    private readonly string _imagesPath;
    private readonly byte[] _pixels;
    private readonly byte[] _labels;
    private readonly int _rows;
    private readonly int _columns;

    private IdxImageSource(string imagesPath, byte[] pixels, byte[] labels, int rows, int columns, IReadOnlyList<string> classes)
    {
        _imagesPath = imagesPath;
        _pixels = pixels;
        _labels = labels;
        _rows = rows;
        _columns = columns;
        Classes = classes;
    }

    public string Description => $"idx:{_imagesPath}";

    public IReadOnlyList<string> Classes { get; }

    public int Count => _labels.Length;

    /// <summary>Opens a folder (with a split: train, t10k or test) or an images file; the labels file sits beside it.</summary>
    public static IdxImageSource Open(string path, string? split = null, IReadOnlyList<string>? classNames = null)
    {
        var imagesPath = File.Exists(path) ? path
            : FindImagesFile(path, split) ?? throw new FileNotFoundException(
                $"no {SplitPrefix(split)}-images-idx3-ubyte[.gz] in {path}");
        var fileName = Path.GetFileName(imagesPath);
        if (!fileName.Contains("-images-idx3-ubyte", StringComparison.Ordinal))
            throw new ArgumentException($"{imagesPath} is not an IDX images file (expected a name like train-images-idx3-ubyte[.gz])");
        var labelsPath = FindInFolder(Path.GetDirectoryName(Path.GetFullPath(imagesPath))!, fileName.Replace("-images-idx3-ubyte", "-labels-idx1-ubyte", StringComparison.Ordinal))
            ?? throw new FileNotFoundException($"the labels file for {imagesPath} (…-labels-idx1-ubyte[.gz]) is missing");

        var (imageDims, pixels) = ReadIdx(imagesPath, ImagesMagic, 3);
        var (labelDims, labels) = ReadIdx(labelsPath, LabelsMagic, 1);
        if (imageDims[0] != labelDims[0])
            throw new InvalidDataException($"{imagesPath} holds {imageDims[0]} images but {labelsPath} holds {labelDims[0]} labels");
        var classCount = labels.Length == 0 ? 0 : labels.Max() + 1;
        if (classNames is not null && classNames.Count < classCount)
            throw new ArgumentException($"{classNames.Count} class names given but the labels go up to {classCount - 1}");
        var classes = classNames ?? Enumerable.Range(0, classCount).Select(index => index.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return new IdxImageSource(Path.GetFullPath(imagesPath), pixels, labels, imageDims[1], imageDims[2], classes);
    }

    internal static string? FindImagesFile(string folder, string? split) =>
        FindInFolder(folder, $"{SplitPrefix(split)}-images-idx3-ubyte");

    public IEnumerable<SourceImage> Images()
    {
        var imageBytes = _rows * _columns;
        var stem = Path.GetFileName(_imagesPath);
        for (var index = 0; index < _labels.Length; index++)
        {
            var at = index;
            var png = EncodePng(_pixels.AsSpan(at * imageBytes, imageBytes));
            yield return new SourceImage($"{stem}#{at:D6}", _labels[at], png.Length, () => png);
        }
    }

    private byte[] EncodePng(ReadOnlySpan<byte> gray)
    {
        using var image = Image.LoadPixelData<L8>(gray, _columns, _rows);
        using var output = new MemoryStream();
        image.Save(output, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 });
        return output.ToArray();
    }

    private static string SplitPrefix(string? split) => split switch
    {
        null or "train" => "train",
        "test" or "t10k" => "t10k",
        _ => split,
    };

    /// <summary>The file, or its <c>.gz</c> form, in the folder.</summary>
    private static string? FindInFolder(string folder, string fileName)
    {
        var stem = fileName.EndsWith(".gz", StringComparison.Ordinal) ? fileName[..^3] : fileName;
        return new[] { Path.Combine(folder, stem), Path.Combine(folder, stem + ".gz") }.FirstOrDefault(File.Exists);
    }

    private static (int[] Dims, byte[] Data) ReadIdx(string path, int expectedMagic, int expectedRank)
    {
        using var file = File.OpenRead(path);
        using var stream = IsGzip(file) ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
        var header = new byte[4 + 4 * expectedRank];
        ReadExactly(stream, header, path, "header");
        var magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != expectedMagic)
            throw new InvalidDataException($"{path}: IDX magic 0x{magic:x8}, expected 0x{expectedMagic:x8} (unsigned bytes, {expectedRank} dimension(s))");
        var dims = new int[expectedRank];
        long total = 1;
        for (var d = 0; d < expectedRank; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4 + 4 * d));
            if (dims[d] < 0 || (d > 0 && dims[d] == 0)) throw new InvalidDataException($"{path}: invalid dimension {dims[d]}");
            if (dims[d] > 0 && total > Array.MaxLength / dims[d])
                throw new InvalidDataException($"{path}: the dimensions [{string.Join(", ", header.Chunk(4).Skip(1).Select(b => BinaryPrimitives.ReadInt32BigEndian(b)))}] declare more than {Array.MaxLength} bytes of data");
            total *= dims[d];
        }
        return (dims, ReadData(stream, (int)total, path));
    }

    // The buffer grows with the bytes really present, so a header that declares gigabytes costs nothing until they arrive.
    private static byte[] ReadData(Stream stream, int declared, string path)
    {
        var data = new byte[Math.Min(declared, InitialDataBuffer)];
        var filled = 0;
        while (filled < declared)
        {
            if (filled == data.Length) Array.Resize(ref data, (int)Math.Min(declared, 2L * data.Length));
            var read = stream.Read(data, filled, data.Length - filled);
            if (read == 0)
                throw new InvalidDataException($"{path}: truncated IDX file (its header declares {declared} bytes of data, the file holds {filled})");
            filled += read;
        }
        return data;
    }

    private static bool IsGzip(FileStream file)
    {
        Span<byte> magic = stackalloc byte[2];
        var read = file.Read(magic);
        file.Position = 0;
        return read == 2 && magic[0] == 0x1F && magic[1] == 0x8B;
    }

    private static void ReadExactly(Stream stream, byte[] buffer, string path, string what)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{path}: truncated IDX file (the {what} ends early)");
        }
    }
}
