using System.Collections.Immutable;
using System.IO.Compression;
using System.Text;
using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Onnx;
using RAE.Models.Tests.Config;
using static RAE.Models.Tests.CheckpointTestFiles;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Fuzzing;

/// <summary>
/// The model-file readers under fuzzing: torch.save zip archives (whole archives, and their pickles alone inside a
/// well-formed archive), safetensors, .npz (stored and deflated) and .npy, ONNX models and YAML configurations.
/// Path-based readers read from a scratch file in <paramref name="workFolder"/>.
/// </summary>
internal static class CheckpointFuzzTargets
{
    private static readonly string[] TorchSaveFiles = ["mixed_protocol2.pt", "mixed_protocol4.pt", "prefixed_state_dict.pt", "model_only.pt"];

    public static IEnumerable<FuzzTarget> All(string workFolder)
    {
        yield return TorchSaveArchive(workFolder);
        yield return Pickle(workFolder);
        yield return SafeTensorsFile(workFolder);
        yield return NpzArchive(workFolder);
        yield return NpyFile(workFolder);
        yield return OnnxModel();
        yield return YamlConfig();
    }

    private static FuzzTarget TorchSaveArchive(string workFolder)
    {
        byte[][] seeds = [File.ReadAllBytes(PtFormats("stat.pt")), .. TorchSaveFiles.Select(name => File.ReadAllBytes(Synthetic(name)))];
        return PathTarget("torch-save", seeds, workFolder, ".pt", path => DisposeTree(PyTorchCheckpoint.Load(path)), IsCheckpointFormatError);
    }

    /// <summary>
    /// Mutates only data.pkl, or replaces it with a random opcode program; the rest of the archive (storages,
    /// byteorder) is the original's, so every case reaches the unpickler.
    /// </summary>
    private static FuzzTarget Pickle(string workFolder)
    {
        var original = File.ReadAllBytes(Synthetic("mixed_protocol2.pt"));
        var entries = ReadEntries(original);
        var pickleName = entries.Keys.Single(name => name.EndsWith("/data.pkl", StringComparison.Ordinal));
        var path = Path.Combine(workFolder, "pickle.pt");
        return new FuzzTarget("pickle", [entries[pickleName]], pickle =>
        {
            File.WriteAllBytes(path, WriteStoredZip(entries.SetItem(pickleName, pickle)));
            DisposeTree(PyTorchCheckpoint.Load(path));
        }, IsCheckpointFormatError, nameof(CheckpointFormatException), PickleProgramGenerator.Next);
    }

    private static FuzzTarget SafeTensorsFile(string workFolder)
    {
        using var stream = new MemoryStream();
        using (var a = arange(12, ScalarType.Float32).reshape(3, 4))
        using (var b = ones(2, ScalarType.Int64))
        using (var c = zeros(5, ScalarType.BFloat16))
            SafeTensors.Save(stream, [new("a", a), new("b", b), new("c", c)], new Dictionary<string, string> { ["format"] = "pt" });
        using var single = new MemoryStream();
        using (var scalar = tensor(2.5f))
        using (var matrix = eye(3, dtype: ScalarType.Float16))
            SafeTensors.Save(single, [new("scalar", scalar), new("matrix", matrix)]);
        return PathTarget("safetensors", [stream.ToArray(), single.ToArray()], workFolder, ".safetensors",
            path => DisposeAll(SafeTensors.Load(path).Values), IsCheckpointFormatError);
    }

    private static FuzzTarget NpzArchive(string workFolder)
    {
        var stored = Path.Combine(workFolder, "seed.npz");
        using (var mu = arange(4, ScalarType.Float64))
        using (var images = ones([2, 3, 3, 3], ScalarType.Byte))
            Npz.Save(stored, [new("mu", mu), new("arr_0", images)]);
        var compressed = new MemoryStream();
        using (var archive = new ZipArchive(compressed, ZipArchiveMode.Create, leaveOpen: true))
        using (var entry = archive.CreateEntry("sigma.npy", CompressionLevel.Optimal).Open())
        {
            entry.Write(NpyFormat.BuildHeader(new NpyHeader(ScalarType.Float64, true, [3, 3])));
            entry.Write(Enumerable.Range(0, 9).SelectMany(i => BitConverter.GetBytes(i * 0.5)).ToArray());
        }
        byte[][] seeds = [File.ReadAllBytes(stored), compressed.ToArray()];
        File.Delete(stored);
        return PathTarget("npz", seeds, workFolder, ".npz", path => DisposeAll(NpzReader.LoadAll(path).Values), IsCheckpointFormatError);
    }

    private static FuzzTarget NpyFile(string workFolder)
    {
        byte[] floats = [.. NpyFormat.BuildHeader(new NpyHeader(ScalarType.Float32, false, [2, 3])), .. new byte[24]];
        byte[] bytes = [.. NpyFormat.BuildHeader(new NpyHeader(ScalarType.Byte, true, [4, 2, 3])), .. Enumerable.Range(0, 24).Select(i => (byte)i)];
        return PathTarget("npy", [floats, bytes], workFolder, ".npy", path => DisposeAll(NpzReader.LoadAll(path).Values), IsCheckpointFormatError);
    }

    private static FuzzTarget OnnxModel()
    {
        var weight = new ProtobufWriter().PackedVarints(1, 2, 2).Varint(2, (long)OnnxDataType.Float).String(8, "w").PackedFloats(4, 1, 2, 3, 4);
        var shift = new ProtobufWriter().PackedVarints(1, 2).Varint(2, (long)OnnxDataType.Int64).String(8, "s").PackedVarints(7, 5, -6);
        var raw = new ProtobufWriter().PackedVarints(1, 3).Varint(2, (long)OnnxDataType.UInt8).String(8, "r").Bytes(9, [1, 2, 3]);
        var node = new ProtobufWriter().String(1, "x").String(1, "w").String(2, "y").String(3, "mm").String(4, "MatMul")
            .Message(5, new ProtobufWriter().String(1, "axes").Varint(20, (long)OnnxAttributeType.Ints).PackedVarints(8, 0, 1));
        byte[][] seeds = [OnnxTestModels.Model([weight, shift], [node]), OnnxTestModels.Model([raw])];
        return new FuzzTarget("onnx", seeds, bytes => OnnxReader.Parse(bytes, "fuzz.onnx"),
            error => error is InvalidDataException or NotSupportedException, "InvalidDataException or NotSupportedException");
    }

    private static FuzzTarget YamlConfig()
    {
        byte[][] seeds = [Encoding.UTF8.GetBytes(ReferenceConfigTexts.Stage2TrainingXL), Encoding.UTF8.GetBytes(ReferenceConfigTexts.Stage1Training)];
        return new FuzzTarget("yaml", seeds, bytes => RaeConfig.Parse(Encoding.UTF8.GetString(bytes), "fuzz.yaml"),
            error => error is ConfigException, nameof(ConfigException));
    }

    private static FuzzTarget PathTarget(string name, byte[][] seeds, string workFolder, string extension, Action<string> read, Func<Exception, bool> isDocumentedError)
    {
        var path = Path.Combine(workFolder, name + extension);
        return new FuzzTarget(name, seeds, bytes =>
        {
            File.WriteAllBytes(path, bytes);
            read(path);
        }, isDocumentedError, nameof(CheckpointFormatException));
    }

    private static bool IsCheckpointFormatError(Exception error) => error is CheckpointFormatException;

    private static ImmutableSortedDictionary<string, byte[]> ReadEntries(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        return archive.Entries.ToDictionary(entry => entry.FullName, entry =>
        {
            using var stream = entry.Open();
            var bytes = new byte[entry.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }).ToImmutableSortedDictionary(StringComparer.Ordinal);
    }

    private static byte[] WriteStoredZip(IEnumerable<KeyValuePair<string, byte[]>> entries)
    {
        using var output = new MemoryStream();
        using (var archive = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, bytes) in entries)
            {
                using var stream = archive.CreateEntry(name, CompressionLevel.NoCompression).Open();
                stream.Write(bytes);
            }
        return output.ToArray();
    }

    internal static void DisposeTree(object? node)
    {
        switch (node)
        {
            case Tensor tensor: tensor.Dispose(); break;
            case PickleDict dictionary:
                foreach (var value in dictionary.Values) DisposeTree(value);
                foreach (var value in dictionary.Attributes.Values) DisposeTree(value);
                break;
            case IEnumerable<object?> items:
                foreach (var item in items) DisposeTree(item);
                break;
        }
    }
}
