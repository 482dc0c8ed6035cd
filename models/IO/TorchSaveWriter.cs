using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>
/// Writes a flat <c>{name: tensor}</c> dictionary in the zip format of <c>torch.save</c> (PyTorch ≥ 1.6), so that the
/// reference's <c>torch.load</c> reads it — e.g. latent statistics as <c>stat.pt</c> (spec §9.1). The pickle is
/// protocol 2 and names only <c>torch._utils._rebuild_tensor_v2</c>, a storage class and
/// <c>collections.OrderedDict</c>, which <c>torch.load(weights_only=True)</c> accepts. CPU, contiguous tensors only.
/// </summary>
public static class TorchSaveWriter
{
    private const string Prefix = "archive/";

    private static readonly Dictionary<ScalarType, string> StorageClasses = new()
    {
        [ScalarType.Float32] = "FloatStorage",
        [ScalarType.Float64] = "DoubleStorage",
        [ScalarType.Float16] = "HalfStorage",
        [ScalarType.BFloat16] = "BFloat16Storage",
        [ScalarType.Int64] = "LongStorage",
        [ScalarType.Int32] = "IntStorage",
        [ScalarType.Byte] = "ByteStorage",
        [ScalarType.Bool] = "BoolStorage",
    };

    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        using var file = File.Create(path);
        Save(file, tensors);
    }

    public static void Save(Stream output, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        var entries = tensors.ToList();
        var pickle = new MemoryStream();
        pickle.Write([0x80, 0x02, (byte)'}', (byte)'(']); // PROTO 2, EMPTY_DICT, MARK
        for (var index = 0; index < entries.Count; index++)
        {
            var (name, tensor) = entries[index];
            if (!StorageClasses.TryGetValue(tensor.dtype, out var storageClass))
                throw new ArgumentException($"tensor '{name}' has dtype {tensor.dtype}, which this writer does not store");
            WriteString(pickle, name);
            WriteGlobal(pickle, "torch._utils", "_rebuild_tensor_v2");
            pickle.WriteByte((byte)'(');
            pickle.WriteByte((byte)'(');
            WriteString(pickle, "storage");
            WriteGlobal(pickle, "torch", storageClass);
            WriteString(pickle, index.ToString(System.Globalization.CultureInfo.InvariantCulture));
            WriteString(pickle, "cpu");
            WriteInt(pickle, tensor.numel());
            pickle.Write([(byte)'t', (byte)'Q']); // TUPLE, BINPERSID
            WriteInt(pickle, 0); // storage offset
            WriteTuple(pickle, tensor.shape);
            WriteTuple(pickle, ContiguousStrides(tensor.shape));
            pickle.WriteByte(0x89); // requires_grad = False
            WriteGlobal(pickle, "collections", "OrderedDict");
            pickle.Write([(byte)')', (byte)'R', (byte)'t', (byte)'R']); // backward hooks OrderedDict(), args tuple, call
        }
        pickle.Write([(byte)'u', (byte)'.']); // SETITEMS, STOP

        using var archive = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true);
        WriteEntry(archive, Prefix + "data.pkl", pickle.ToArray());
        WriteEntry(archive, Prefix + "byteorder", "little"u8.ToArray());
        for (var index = 0; index < entries.Count; index++)
        {
            using var cpu = entries[index].Value.detach().cpu().contiguous();
            WriteEntry(archive, $"{Prefix}data/{index}", cpu.bytes.ToArray());
        }
        WriteEntry(archive, Prefix + "version", "3\n"u8.ToArray());
    }

    private static long[] ContiguousStrides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (var d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= Math.Max(shape[d], 1);
        }
        return strides;
    }

    private static void WriteEntry(ZipArchive archive, string name, byte[] bytes)
    {
        var entry = archive.CreateEntry(name, CompressionLevel.NoCompression);
        using var stream = entry.Open();
        stream.Write(bytes);
    }

    private static void WriteString(Stream pickle, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        pickle.WriteByte((byte)'X'); // BINUNICODE
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)bytes.Length);
        pickle.Write(length);
        pickle.Write(bytes);
    }

    private static void WriteGlobal(Stream pickle, string module, string name) =>
        pickle.Write(Encoding.ASCII.GetBytes($"c{module}\n{name}\n"));

    private static void WriteInt(Stream pickle, long value)
    {
        if (value is < int.MinValue or > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(value), $"{value} does not fit the 32-bit pickle integer this writer uses");
        pickle.WriteByte((byte)'J'); // BININT
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, (int)value);
        pickle.Write(bytes);
    }

    private static void WriteTuple(Stream pickle, long[] values)
    {
        pickle.WriteByte((byte)'(');
        foreach (var value in values) WriteInt(pickle, value);
        pickle.WriteByte((byte)'t');
    }
}
