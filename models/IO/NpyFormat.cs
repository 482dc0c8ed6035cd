using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>The header of one .npy array: element type, C or Fortran order, shape.</summary>
public sealed record NpyHeader(ScalarType Dtype, bool FortranOrder, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));

    public long ByteCount => checked(ElementCount * SafeTensors.ElementSize(Dtype));
}

/// <summary>
/// The NPY format (numpy/lib/format.py): magic "\x93NUMPY", version, little-endian header length, a Python dict literal
/// padded with spaces and a newline to a multiple of 64 bytes. Headers are written exactly as numpy ≥ 1.24 writes them,
/// including the spare room numpy leaves so the first axis can grow in place (which lets us patch it after streaming).
/// </summary>
public static partial class NpyFormat
{
    private const int Alignment = 64;
    private const int GrowthAxisMaxDigits = 21;
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static string Descr(ScalarType dtype) => dtype switch
    {
        ScalarType.Byte => "|u1",
        ScalarType.Int8 => "|i1",
        ScalarType.Bool => "|b1",
        ScalarType.Float16 => "<f2",
        ScalarType.Float32 => "<f4",
        ScalarType.Float64 => "<f8",
        ScalarType.Int16 => "<i2",
        ScalarType.Int32 => "<i4",
        ScalarType.Int64 => "<i8",
        _ => throw new NotSupportedException($"dtype {dtype} has no NPY equivalent"),
    };

    public static ScalarType ParseDescr(string descr, string source) => descr switch
    {
        "|u1" or "<u1" or "u1" => ScalarType.Byte,
        "|i1" or "<i1" or "i1" => ScalarType.Int8,
        "|b1" or "<b1" or "b1" => ScalarType.Bool,
        "<f2" or "=f2" => ScalarType.Float16,
        "<f4" or "=f4" => ScalarType.Float32,
        "<f8" or "=f8" => ScalarType.Float64,
        "<i2" or "=i2" => ScalarType.Int16,
        "<i4" or "=i4" => ScalarType.Int32,
        "<i8" or "=i8" => ScalarType.Int64,
        _ when descr.StartsWith('>') => throw new CheckpointFormatException(source, $"big-endian array dtype '{descr}' is not supported"),
        _ => throw new CheckpointFormatException(source, $"array dtype '{descr}' is not supported (uint8, int8/16/32/64, bool, float16/32/64 are)"),
    };

    /// <summary>The complete header bytes (magic, version, length, padded dict) for an array.</summary>
    public static byte[] BuildHeader(NpyHeader header)
    {
        var shape = header.Shape.Length switch
        {
            0 => "()",
            1 => $"({header.Shape[0]},)",
            _ => "(" + string.Join(", ", header.Shape) + ")",
        };
        var text = new StringBuilder("{")
            .Append(CultureInfo.InvariantCulture, $"'descr': '{Descr(header.Dtype)}', ")
            .Append(CultureInfo.InvariantCulture, $"'fortran_order': {(header.FortranOrder ? "True" : "False")}, ")
            .Append(CultureInfo.InvariantCulture, $"'shape': {shape}, ")
            .Append('}');
        if (header.Shape.Length > 0)
        {
            var growthAxis = header.FortranOrder ? header.Shape[^1] : header.Shape[0];
            text.Append(' ', Math.Max(0, GrowthAxisMaxDigits - growthAxis.ToString(CultureInfo.InvariantCulture).Length));
        }

        // Version 1.0 has a 2-byte length; 2.0 (4 bytes) only when the header does not fit.
        foreach (var (major, lengthBytes) in new[] { (1, 2), (2, 4) })
        {
            var prefixLength = Magic.Length + 2 + lengthBytes;
            var padding = Alignment - (prefixLength + text.Length + 1) % Alignment;
            var headerLength = text.Length + padding + 1;
            if (lengthBytes == 2 && headerLength > ushort.MaxValue) continue;
            var bytes = new byte[prefixLength + headerLength];
            Magic.CopyTo(bytes, 0);
            bytes[6] = (byte)major;
            bytes[7] = 0;
            if (lengthBytes == 2) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLength);
            else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)headerLength);
            Encoding.ASCII.GetBytes(text.ToString(), bytes.AsSpan(prefixLength));
            bytes.AsSpan(prefixLength + text.Length, padding).Fill((byte)' ');
            bytes[^1] = (byte)'\n';
            return bytes;
        }
        throw new NotSupportedException("NPY header too long");
    }

    /// <summary>Reads a header from the start of a stream, leaving the stream at the first data byte.</summary>
    /// <param name="available">Bytes the array really has from the start of the stream, when known: the data the header declares must fit in them.</param>
    public static NpyHeader ReadHeader(Stream stream, string source, long? available = null, ReaderLimits? limits = null)
    {
        limits ??= ReaderLimits.Default;
        var prefix = new byte[8];
        ReadExactly(stream, prefix, source);
        if (!prefix.AsSpan(0, 6).SequenceEqual(Magic)) throw new CheckpointFormatException(source, "not an NPY array (bad magic)");
        var major = prefix[6];
        long headerLength;
        if (major == 1)
        {
            var length = new byte[2];
            ReadExactly(stream, length, source);
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(length);
        }
        else if (major is 2 or 3)
        {
            var length = new byte[4];
            ReadExactly(stream, length, source);
            headerLength = BinaryPrimitives.ReadUInt32LittleEndian(length);
        }
        else throw new CheckpointFormatException(source, $"unsupported NPY version {major}.{prefix[7]}");
        if (headerLength > limits.MaxNpyHeaderBytes)
            throw CheckpointFormatException.LimitExceeded(source, nameof(ReaderLimits.MaxNpyHeaderBytes), limits.MaxNpyHeaderBytes,
                $"the NPY {major}.{prefix[7]} header declares {headerLength} bytes");
        var prefixLength = major == 1 ? 10 : 12;
        if (available is { } total && prefixLength + headerLength > total)
            throw new CheckpointFormatException(source, $"the NPY header declares {headerLength} bytes but the array has only {total - prefixLength} after its prefix");
        var headerBytes = new byte[headerLength];
        ReadExactly(stream, headerBytes, source);
        var header = ParseHeaderText((major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes), source, limits);
        long byteCount;
        try
        {
            byteCount = header.ByteCount;
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException(source, $"NPY shape ({string.Join(", ", header.Shape)}) overflows 64-bit sizes");
        }
        if (available is { } bytes && byteCount > bytes - prefixLength - headerLength)
            throw new CheckpointFormatException(source,
                $"the NPY header declares {byteCount} data bytes ({header.Dtype} [{string.Join(", ", header.Shape)}]) but only {bytes - prefixLength - headerLength} follow it");
        return header;
    }

    private static NpyHeader ParseHeaderText(string text, string source, ReaderLimits limits)
    {
        var descr = DescrPattern().Match(text);
        var fortran = FortranPattern().Match(text);
        var shape = ShapePattern().Match(text);
        if (!descr.Success || !fortran.Success || !shape.Success)
            throw new CheckpointFormatException(source, $"malformed NPY header: {text.Trim()}");
        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => long.TryParse(d.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
                : throw new CheckpointFormatException(source, $"malformed NPY shape ({shape.Groups[1].Value})"))
            .ToArray();
        if (dims.Length > limits.MaxDimensions)
            throw CheckpointFormatException.LimitExceeded(source, nameof(ReaderLimits.MaxDimensions), limits.MaxDimensions, $"the NPY shape has {dims.Length} dimensions");
        return new NpyHeader(ParseDescr(descr.Groups[1].Value, source), fortran.Groups[1].Value == "True", dims);
    }

    private static void ReadExactly(Stream stream, byte[] buffer, string source)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException error)
        {
            throw new CheckpointFormatException(source, "the NPY header is truncated", error);
        }
    }

    [GeneratedRegex(@"['""]descr['""]\s*:\s*['""]([^'""]+)['""]")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"['""]fortran_order['""]\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"['""]shape['""]\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
