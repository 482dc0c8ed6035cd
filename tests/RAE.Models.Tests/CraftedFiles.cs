using System.Buffers.Binary;
using System.Text;

namespace RAE.Models.Tests;

/// <summary>Hostile files built byte by byte: pickles, torch.save archives, safetensors and .npy files that break one reader limit each.</summary>
internal static class CraftedFiles
{
    private const byte Proto = 0x80, Mark = (byte)'(', Tuple = (byte)'t', Tuple1 = 0x85, Reduce = (byte)'R', Stop = (byte)'.';
    private const byte EmptyList = (byte)']', Append = (byte)'a', BinPut = (byte)'q', BinGet = (byte)'h', Pop = (byte)'0';

    /// <summary>A pickle of <paramref name="depth"/> nested one-element tuples around None.</summary>
    public static byte[] NestedTuplePickle(int depth)
    {
        var pickle = new byte[depth + 4];
        pickle[0] = Proto;
        pickle[1] = 2;
        pickle[2] = (byte)'N';
        pickle.AsSpan(3, depth).Fill(Tuple1);
        pickle[^1] = Stop;
        return pickle;
    }

    /// <summary>
    /// Lists that each contain the next, filled innermost-last so that no list is deep when it is appended: only the
    /// finished tree is <paramref name="depth"/> levels deep.
    /// </summary>
    public static byte[] NestedListPickleFilledOutsideIn(int depth)
    {
        var pickle = new List<byte> { Proto, 2 };
        for (var i = 0; i < depth; i++) pickle.AddRange([EmptyList, (byte)'r', .. BitConverter.GetBytes(i), Pop]); // LONG_BINPUT i
        for (var i = 0; i < depth - 1; i++) pickle.AddRange([(byte)'j', .. BitConverter.GetBytes(i), (byte)'j', .. BitConverter.GetBytes(i + 1), Append, Pop]);
        pickle.AddRange([(byte)'j', .. BitConverter.GetBytes(0), Stop]);
        return [.. pickle];
    }

    /// <summary>
    /// Lists each holding the previous one twice through the memo (x0 = []; x1 = [x0, x0]; ...): <paramref name="depth"/>
    /// (at most 255) levels of a few bytes each, 2^depth paths for anything that walks it as a tree.
    /// </summary>
    public static byte[] SharedListPickle(int depth)
    {
        var pickle = new List<byte> { Proto, 2, EmptyList, BinPut, 0 };
        for (var level = 1; level <= depth; level++)
            pickle.AddRange([Pop, EmptyList, Mark, BinGet, (byte)(level - 1), BinGet, (byte)(level - 1), (byte)'e', BinPut, (byte)level]);
        pickle.Add(Stop);
        return [.. pickle];
    }

    /// <summary>A list that contains itself (x = []; x.append(x)).</summary>
    public static byte[] SelfContainingListPickle() => [Proto, 2, EmptyList, BinPut, 0, BinGet, 0, Append, Stop];

    /// <summary>A dict whose key is a tuple of <paramref name="elements"/> integers.</summary>
    public static byte[] TupleKeyPickle(int elements)
    {
        var pickle = new List<byte> { Proto, 2, (byte)'}', Mark };
        for (var i = 0; i < elements; i++) pickle.AddRange([(byte)'K', (byte)(i % 256)]);
        pickle.AddRange([Tuple, (byte)'N', (byte)'s', Stop]);
        return [.. pickle];
    }

    /// <summary>A text-encoded (protocol 0 LONG) integer of <paramref name="digits"/> digits.</summary>
    public static byte[] TextIntegerPickle(int digits) => [(byte)'L', .. Encoding.ASCII.GetBytes(new string('7', digits)), (byte)'L', (byte)'\n', Stop];

    /// <summary>
    /// _rebuild_tensor_v2 over storage '0' (<paramref name="storageElements"/> float32) with the given size and stride.
    /// </summary>
    public static byte[] TensorViewPickle(long storageElements, long[] size, long[] stride)
    {
        var pickle = new List<byte> { Proto, 2 };
        pickle.AddRange(Encoding.ASCII.GetBytes("ctorch._utils\n_rebuild_tensor_v2\n"));
        pickle.Add(Mark);
        pickle.Add(Mark);
        ShortString(pickle, "storage");
        pickle.AddRange(Encoding.ASCII.GetBytes("ctorch\nFloatStorage\n"));
        ShortString(pickle, "0");
        ShortString(pickle, "cpu");
        Long(pickle, storageElements);
        pickle.Add(Tuple);
        pickle.Add((byte)'Q'); // BINPERSID
        Long(pickle, 0);
        LongTuple(pickle, size);
        LongTuple(pickle, stride);
        pickle.Add(0x89); // NEWFALSE: requires_grad
        pickle.AddRange([Tuple, Reduce, Stop]);
        return [.. pickle];
    }

    /// <summary>A torch.save-like archive holding one float32 storage of <paramref name="storageElements"/> ones and a view of it.</summary>
    public static string ViewArchive(long storageElements, long[] size, long[] stride) =>
        CheckpointTestFiles.WriteArchive(TensorViewPickle(storageElements, size, stride),
            new Dictionary<string, byte[]> { ["0"] = Enumerable.Repeat(BitConverter.GetBytes(1f), (int)storageElements).SelectMany(b => b).ToArray() });

    /// <summary>The same view as <see cref="ViewArchive"/>, as entry 'w' of a state dict.</summary>
    public static string ViewStateDictArchive(long storageElements, long[] size, long[] stride)
    {
        var tensor = TensorViewPickle(storageElements, size, stride);
        byte[] pickle = [Proto, 2, (byte)'}', 0x8c, 1, (byte)'w', .. tensor[2..^1], (byte)'s', Stop];
        return CheckpointTestFiles.WriteArchive(pickle,
            new Dictionary<string, byte[]> { ["0"] = Enumerable.Repeat(BitConverter.GetBytes(1f), (int)storageElements).SelectMany(b => b).ToArray() });
    }

    /// <summary>Overwrites the uncompressed size that the zip central directory declares for <paramref name="entryName"/>.</summary>
    public static void DeclareUncompressedSize(string zipPath, string entryName, uint size)
    {
        var bytes = File.ReadAllBytes(zipPath);
        var name = Encoding.UTF8.GetBytes(entryName);
        for (var i = 0; i + 46 <= bytes.Length; i++)
        {
            if (bytes[i] != 'P' || bytes[i + 1] != 'K' || bytes[i + 2] != 1 || bytes[i + 3] != 2) continue;
            var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(i + 28));
            if (!bytes.AsSpan(i + 46, nameLength).SequenceEqual(name)) continue;
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i + 24), size);
            File.WriteAllBytes(zipPath, bytes);
            return;
        }
        throw new InvalidOperationException($"{zipPath} has no central directory entry '{entryName}'");
    }

    /// <summary>A safetensors file with the given JSON header (padded) followed by <paramref name="dataBytes"/> zero bytes.</summary>
    public static string SafeTensorsFile(string headerJson, int dataBytes)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var path = CheckpointTestFiles.TemporaryPath(".safetensors");
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((long)header.Length));
        stream.Write(header);
        stream.Write(new byte[dataBytes]);
        return path;
    }

    /// <summary>An .npy file: the given version and header text (declared length <paramref name="declaredHeaderLength"/> when set) and data.</summary>
    public static string NpyFile(int major, string headerText, byte[] data, uint? declaredHeaderLength = null)
    {
        var header = Encoding.ASCII.GetBytes(headerText);
        var path = CheckpointTestFiles.TemporaryPath(".npy");
        using var stream = File.Create(path);
        stream.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0]);
        if (major == 1) stream.Write(BitConverter.GetBytes((ushort)(declaredHeaderLength ?? (uint)header.Length)));
        else stream.Write(BitConverter.GetBytes(declaredHeaderLength ?? (uint)header.Length));
        stream.Write(header);
        stream.Write(data);
        return path;
    }

    /// <summary>A configuration whose value is <paramref name="depth"/> nested flow sequences.</summary>
    public static string DeepFlowSequenceYaml(int depth) => "misc:\n  deep: " + new string('[', depth) + new string(']', depth) + "\n";

    private static void ShortString(List<byte> pickle, string text)
    {
        pickle.Add(0x8c);
        pickle.Add((byte)text.Length);
        pickle.AddRange(Encoding.ASCII.GetBytes(text));
    }

    private static void Long(List<byte> pickle, long value)
    {
        pickle.AddRange([0x8a, 8]); // LONG1 of 8 bytes
        pickle.AddRange(BitConverter.GetBytes(value));
    }

    private static void LongTuple(List<byte> pickle, long[] values)
    {
        pickle.Add(Mark);
        foreach (var value in values) Long(pickle, value);
        pickle.Add(Tuple);
    }
}
