using System.Text;
using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Onnx;
using RAE.Models.Tests.Config;
using static RAE.Models.Tests.CheckpointTestFiles;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>
/// Seeded mutations (byte flips, extreme 8-byte values, truncations) of valid files for every reader. A reader may
/// accept a mutated file or refuse it with its typed exception; any other exception, a crash or a hang is a bug.
/// </summary>
public sealed class ReaderFuzzTests
{
    private const int CasesPerFile = 400;
    private const int Seed = 20261206;

    [Fact]
    public void MutatedTorchSaveArchivesOnlyFailWithCheckpointFormatException()
    {
        foreach (var original in new[] { PtFormats("stat.pt"), Synthetic("mixed_protocol2.pt") })
            FuzzFile(File.ReadAllBytes(original), ".pt", path => DisposeTree(PyTorchCheckpoint.Load(path)), error => error is CheckpointFormatException);
    }

    [Fact]
    public void MutatedSafeTensorsFilesOnlyFailWithCheckpointFormatException()
    {
        using var stream = new MemoryStream();
        using (var a = arange(12, ScalarType.Float32).reshape(3, 4))
        using (var b = ones(2, ScalarType.Int64))
        using (var c = zeros(5, ScalarType.BFloat16))
            SafeTensors.Save(stream, [new("a", a), new("b", b), new("c", c)], new Dictionary<string, string> { ["format"] = "pt" });
        FuzzFile(stream.ToArray(), ".safetensors", path => DisposeAll(SafeTensors.Load(path).Values), error => error is CheckpointFormatException);
    }

    [Fact]
    public void MutatedNpzAndNpyFilesOnlyFailWithCheckpointFormatException()
    {
        var npz = TemporaryPath(".npz");
        try
        {
            using (var mu = arange(4, ScalarType.Float64))
            using (var images = ones([2, 3, 3, 3], ScalarType.Byte))
                Npz.Save(npz, [new("mu", mu), new("arr_0", images)]);
            FuzzFile(File.ReadAllBytes(npz), ".npz", path => DisposeAll(NpzReader.LoadAll(path).Values), error => error is CheckpointFormatException);
        }
        finally
        {
            File.Delete(npz);
        }
        var npy = NpyFormat.BuildHeader(new NpyHeader(ScalarType.Float32, false, [2, 3])).Concat(new byte[24]).ToArray();
        FuzzFile(npy, ".npy", path => DisposeAll(NpzReader.LoadAll(path).Values), error => error is CheckpointFormatException);
    }

    [Fact]
    public void MutatedOnnxModelsOnlyFailWithTheReadersDataOrSupportErrors()
    {
        var weight = new ProtobufWriter().PackedVarints(1, 2, 2).Varint(2, (long)OnnxDataType.Float).String(8, "w").PackedFloats(4, 1, 2, 3, 4);
        var shift = new ProtobufWriter().PackedVarints(1, 2).Varint(2, (long)OnnxDataType.Int64).String(8, "s").PackedVarints(7, 5, -6);
        var node = new ProtobufWriter().String(1, "x").String(1, "w").String(2, "y").String(3, "mm").String(4, "MatMul")
            .Message(5, new ProtobufWriter().String(1, "axes").Varint(20, (long)OnnxAttributeType.Ints).PackedVarints(8, 0, 1));
        var model = OnnxTestModels.Model([weight, shift], [node]);
        Fuzz(model, bytes => OnnxReader.Parse(bytes, "fuzz.onnx"), error => error is InvalidDataException or NotSupportedException);
    }

    [Fact]
    public void MutatedConfigurationsOnlyFailWithConfigException()
    {
        var text = Encoding.UTF8.GetBytes(ReferenceConfigTexts.Stage2TrainingXL);
        Fuzz(text, bytes => RaeConfig.Parse(Encoding.UTF8.GetString(bytes), "fuzz.yaml"), error => error is ConfigException);
    }

    private static void FuzzFile(byte[] original, string extension, Action<string> read, Func<Exception, bool> expected)
    {
        var path = TemporaryPath(extension);
        try
        {
            Fuzz(original, bytes =>
            {
                File.WriteAllBytes(path, bytes);
                read(path);
            }, expected);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void Fuzz(byte[] original, Action<byte[]> read, Func<Exception, bool> expected)
    {
        read(original); // the unmutated file must read
        var random = new Random(Seed + original.Length);
        var unexpected = new List<string>();
        var refused = 0;
        for (var index = 0; index < CasesPerFile; index++)
        {
            var (mutated, how) = Mutate(original, random);
            try
            {
                read(mutated);
            }
            catch (Exception error) when (expected(error))
            {
                refused++;
            }
            catch (Exception error)
            {
                var where = string.Join(" < ", (error.StackTrace ?? "").Split('\n').Take(3).Select(frame => frame.Trim()));
                unexpected.Add($"case {index} ({how}): {error.GetType().Name}: {error.Message} at {where}");
            }
        }
        Assert.True(unexpected.Count == 0, $"{unexpected.Count} of {CasesPerFile} mutations escaped the typed errors:\n{string.Join("\n", unexpected.Take(10))}");
        Assert.True(refused > CasesPerFile / 10, $"only {refused} of {CasesPerFile} mutations were refused: the mutations do not reach the reader");
    }

    private static (byte[] Bytes, string How) Mutate(byte[] original, Random random)
    {
        switch (random.Next(4))
        {
            case 0:
            {
                var length = random.Next(original.Length);
                return (original[..length], $"truncated to {length}");
            }
            case 1:
            {
                var bytes = (byte[])original.Clone();
                var position = random.Next(Math.Max(1, bytes.Length - 8));
                var extreme = random.Next(3) switch { 0 => long.MaxValue, 1 => -1L, _ => int.MaxValue + 1L };
                BitConverter.GetBytes(extreme).AsSpan(0, Math.Min(8, bytes.Length - position)).CopyTo(bytes.AsSpan(position));
                return (bytes, $"8 bytes at {position} set to {extreme}");
            }
            default:
            {
                var bytes = (byte[])original.Clone();
                var flips = random.Next(1, 9);
                var positions = new List<int>();
                for (var i = 0; i < flips; i++)
                {
                    var position = random.Next(bytes.Length);
                    bytes[position] = (byte)random.Next(256);
                    positions.Add(position);
                }
                return (bytes, $"bytes at {string.Join(",", positions)} replaced");
            }
        }
    }

    private static void DisposeTree(object? node)
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
