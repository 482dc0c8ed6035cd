using System.Numerics;
using System.Text;
using System.Text.Json;
using RAE.Models.IO;
using static RAE.Models.Tests.CheckpointTestFiles;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class PyTorchCheckpointTests
{
    public static TheoryData<string> PtFormatFiles => new() { "model.pt", "stage2_model.pt", "stage2_ckpt_with_ema.pt", "stat.pt", "stat_batched.pt" };

    [Theory]
    [MemberData(nameof(PtFormatFiles))]
    public void FixtureFileMatchesTheSha256InCaseJson(string name)
    {
        using var caseJson = JsonDocument.Parse(File.ReadAllText(PtFormats("case.json")));
        Assert.Equal(caseJson.RootElement.GetProperty(name).GetString(), Sha256(PtFormats(name)));
    }

    [Theory]
    [MemberData(nameof(PtFormatFiles))]
    public void EveryPtFormatsFileLoadsIntoDictionariesOfTensors(string name)
    {
        var root = Assert.IsType<PickleDict>(PyTorchCheckpoint.Load(PtFormats(name)));
        var tensors = new List<Tensor>();
        CollectTensors(root, tensors);
        try
        {
            Assert.NotEmpty(tensors);
            Assert.All(tensors, tensor => Assert.Equal(TorchSharp.DeviceType.CPU, tensor.device_type));
        }
        finally
        {
            DisposeAll(tensors);
        }
    }

    [Theory]
    [InlineData("model.pt", "decoder_tiny")]
    [InlineData("stage2_model.pt", "ddt_tiny")]
    public void StateDictPickleEqualsTheSafetensorsWeightsBitExactly(string file, string fixtureCase)
    {
        var root = Assert.IsType<PickleDict>(PyTorchCheckpoint.Load(PtFormats(file)));
        var expected = SafeTensors.Load(Path.Combine(Fixtures.Case(fixtureCase), "weights.safetensors"));
        try
        {
            Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), root.Keys.Cast<string>().Order(StringComparer.Ordinal));
            foreach (var (key, tensor) in expected) AssertBitExact(tensor, Assert.IsType<Tensor>(root[key]), key);
        }
        finally
        {
            DisposeAll(expected.Values);
            DisposeAll(root.Values.OfType<Tensor>());
        }
    }

    [Fact]
    public void TrainingCheckpointHoldsEmaWeightsZeroModelAndCounters()
    {
        var root = Assert.IsType<PickleDict>(PyTorchCheckpoint.Load(PtFormats("stage2_ckpt_with_ema.pt")));
        var ema = Assert.IsType<PickleDict>(root["ema"]);
        var model = Assert.IsType<PickleDict>(root["model"]);
        var expected = SafeTensors.Load(Path.Combine(Fixtures.Case("ddt_tiny"), "weights.safetensors"));
        try
        {
            Assert.Equal(1234L, root["step"]);
            Assert.Equal(5L, root["epoch"]);
            foreach (var (key, tensor) in expected)
            {
                AssertBitExact(tensor, Assert.IsType<Tensor>(ema[key]), key);
                Assert.Equal(0, Assert.IsType<Tensor>(model[key]).count_nonzero().item<long>());
            }
        }
        finally
        {
            DisposeAll(expected.Values);
            DisposeAll(ema.Values.Concat(model.Values).OfType<Tensor>());
        }
    }

    [Fact]
    public void StatFileHoldsTheDecoderLatentStatisticsBitExactly()
    {
        var root = Assert.IsType<PickleDict>(PyTorchCheckpoint.Load(PtFormats("stat.pt")));
        var io = SafeTensors.Load(Path.Combine(Fixtures.Case("decoder_tiny"), "io.safetensors"));
        try
        {
            AssertBitExact(io["latent_mean"], Assert.IsType<Tensor>(root["mean"]), "mean");
            AssertBitExact(io["latent_var"], Assert.IsType<Tensor>(root["var"]), "var");
        }
        finally
        {
            DisposeAll(io.Values);
            DisposeAll(root.Values.OfType<Tensor>());
        }
    }

    [Theory]
    [InlineData("mixed_protocol2.pt")]
    [InlineData("mixed_protocol4.pt")]
    public void SyntheticTensorsHonourStridesOffsetsAndDtypes(string file)
    {
        using var scope = NewDisposeScope();
        var root = Assert.IsType<PickleDict>(PyTorchCheckpoint.Load(Synthetic(file)));
        var state = Assert.IsType<PickleDict>(root["state"]);
        Tensor Get(string key) => Assert.IsType<Tensor>(state[key]);
        var grid = arange(12, dtype: float32).view(3, 4);

        AssertBitExact(grid.t(), Get("transposed"), "transposed");
        Assert.True(Get("transposed").is_contiguous());
        AssertBitExact(tensor(new float[] { 2, 4, 8, 10 }).view(2, 2), Get("offset_strided"), "offset_strided");
        AssertBitExact(grid, Get("full"), "full");
        AssertBitExact(tensor(2.5, float64), Get("scalar"), "scalar");
        AssertBitExact(tensor(new[] { 0.5f, -1.25f, 3.0f }).to(float16), Get("half"), "half");
        AssertBitExact(tensor(new[] { 1.0f, -2.0f, 0.15625f, 96.0f }).view(2, 2).to(bfloat16), Get("bf16"), "bf16");
        AssertBitExact(tensor(new[] { -3L, 1L << 40, 7L }), Get("int64"), "int64");
        AssertBitExact(tensor(new[] { -1, 0, 123456 }), Get("int32"), "int32");
        AssertBitExact(tensor(new byte[] { 0, 128, 255 }), Get("uint8"), "uint8");
        AssertBitExact(tensor(new[] { true, false, true }), Get("bool"), "bool");
        AssertBitExact(tensor(new[] { 0.25f, -0.75f }), Get("param"), "param");

        Assert.Equal("collections.OrderedDict", state.PythonType);
        var metadata = Assert.IsType<PickleDict>(state.Attributes["_metadata"]);
        Assert.Equal(2L, Assert.IsType<PickleDict>(metadata["blocks.0"])["version"]);
        Assert.Equal(1234L, root["int"]);
        Assert.Equal(-70000L, root["negative"]);
        Assert.Equal(BigInteger.Pow(2, 70), root["big"]);
        Assert.Equal(0.1, root["float"]);
        Assert.Equal("héllo", root["text"]);
        Assert.Null(root["none"]);
        Assert.Equal(true, root["flag"]);
        var list = Assert.IsType<List<object?>>(root["list"]);
        Assert.Equal(new object?[] { 1L, 2.5, "x", new PickleTuple([1L, 2L]) }, list);
        Assert.Equal(new PickleTuple([0.9, 0.95]), root["tuple"]);
        var nested = Assert.IsType<PickleDict>(root["nested"]);
        Assert.Equal("three", nested[3L]);
        AssertBitExact(grid, Assert.IsType<Tensor>(nested["shared_again"]), "shared_again");
    }

    [Fact]
    public void OpenDefersTensorDataAndDescribesStorages()
    {
        using var checkpoint = PyTorchCheckpoint.Open(Synthetic("mixed_protocol2.pt"));
        var state = Assert.IsType<PickleDict>(Assert.IsType<PickleDict>(checkpoint.Root)["state"]);
        var strided = Assert.IsType<TensorReference>(state["offset_strided"]);
        Assert.Equal(("0", ScalarType.Float32, 12L), (strided.Storage.Key, strided.Storage.Dtype, strided.Storage.Numel));
        Assert.Equal(2L, strided.StorageOffset);
        Assert.Equal(new long[] { 2, 2 }, strided.Shape);
        Assert.Equal(new long[] { 6, 2 }, strided.Stride);
        Assert.True(Assert.IsType<TensorReference>(state["param"]).RequiresGrad);
        Assert.False(Assert.IsType<TensorReference>(state["full"]).RequiresGrad);
        using var read = checkpoint.ReadTensor(strided);
        Assert.Equal(new float[] { 2, 4, 8, 10 }, read.data<float>().ToArray());
    }

    [Fact]
    public void UnknownGlobalIsRefusedWithItsNameAndTheFile()
    {
        var path = Synthetic("unknown_global.pt");
        var error = Assert.Throws<CheckpointFormatException>(() => PyTorchCheckpoint.Load(path));
        Assert.Contains("argparse.Namespace", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void UnknownGlobalBecomesAnInertRecordWhenAllowed()
    {
        var root = Assert.IsType<PickleDict>(PyTorchCheckpoint.Load(Synthetic("unknown_global.pt"), allowUnknownGlobals: true));
        var args = Assert.IsType<PickleObject>(root["args"]);
        Assert.Equal("argparse.Namespace", args.Type.QualifiedName);
        Assert.Equal(0.1, Assert.IsType<PickleDict>(args.State)["lr"]);
        DisposeAll(Assert.IsType<PickleDict>(root["ema"]).Values.OfType<Tensor>());
    }

    [Fact]
    public void PickleThatWouldRunAShellCommandIsRefused()
    {
        // os.system('echo pwned') as pickle protocol 2: GLOBAL, BINUNICODE, TUPLE1, REDUCE, STOP.
        var pickle = new List<byte> { 0x80, 0x02 };
        pickle.AddRange("cos\nsystem\n"u8.ToArray());
        pickle.Add((byte)'X');
        pickle.AddRange(BitConverter.GetBytes(11));
        pickle.AddRange("echo pwned"u8.ToArray().Append((byte)'!'));
        pickle.AddRange(new byte[] { 0x85, (byte)'R', (byte)'.' });
        var path = WriteArchive(pickle.ToArray());
        try
        {
            var error = Assert.Throws<CheckpointFormatException>(() => PyTorchCheckpoint.Load(path));
            Assert.Contains("'os.system'", error.Message);
            Assert.Contains(path, error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TruncatedArchiveGivesAClearErrorNamingTheFile()
    {
        var bytes = File.ReadAllBytes(PtFormats("model.pt"));
        var path = TemporaryPath(".pt");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        try
        {
            var error = Assert.Throws<CheckpointFormatException>(() => PyTorchCheckpoint.Load(path));
            Assert.Contains(path, error.Message);
            Assert.Contains("corrupted or truncated", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("this is not a checkpoint", "no zip signature")]
    [InlineData("\u0080\u0002legacy", "legacy")]
    public void NonZipInputGivesAClearErrorNamingTheFile(string content, string expectedProblem)
    {
        var path = TemporaryPath(".pt");
        File.WriteAllBytes(path, Encoding.Latin1.GetBytes(content));
        try
        {
            var error = Assert.Throws<CheckpointFormatException>(() => PyTorchCheckpoint.Load(path));
            Assert.Contains(path, error.Message);
            Assert.Contains(expectedProblem, error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TruncatedPickleGivesAClearErrorNamingTheFile()
    {
        var pickle = ReadEntry(PtFormats("stat.pt"), "stat/data.pkl");
        var path = WriteArchive(pickle[..100]);
        try
        {
            var error = Assert.Throws<CheckpointFormatException>(() => PyTorchCheckpoint.Load(path));
            Assert.Contains(path, error.Message);
            Assert.Contains("ends unexpectedly", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ShortOrMissingStorageGivesAClearError()
    {
        var pickle = ReadEntry(PtFormats("stat.pt"), "stat/data.pkl");
        var path = WriteArchive(pickle, new Dictionary<string, byte[]> { ["0"] = new byte[10] });
        try
        {
            using var checkpoint = PyTorchCheckpoint.Open(path);
            var root = Assert.IsType<PickleDict>(checkpoint.Root);
            var shortError = Assert.Throws<CheckpointFormatException>(() => checkpoint.ReadTensor((TensorReference)root["mean"]!));
            Assert.Contains("storage '0'", shortError.Message);
            Assert.Contains(path, shortError.Message);
            var missingError = Assert.Throws<CheckpointFormatException>(() => checkpoint.ReadTensor((TensorReference)root["var"]!));
            Assert.Contains("archive/data/1", missingError.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static byte[] ReadEntry(string zipPath, string entryName)
    {
        using var archive = System.IO.Compression.ZipFile.OpenRead(zipPath);
        using var stream = archive.GetEntry(entryName)!.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static void CollectTensors(object? node, List<Tensor> tensors)
    {
        switch (node)
        {
            case Tensor tensor: tensors.Add(tensor); break;
            case TensorReference: Assert.Fail("Load left an unread tensor reference"); break;
            case PickleDict dictionary: foreach (var value in dictionary.Values) CollectTensors(value, tensors); break;
            case IEnumerable<object?> items when node is not string: foreach (var item in items) CollectTensors(item, tensors); break;
        }
    }
}
