using System.IO.Compression;
using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Onnx;
using static RAE.Models.Tests.CheckpointTestFiles;

namespace RAE.Models.Tests;

/// <summary>One crafted file per <see cref="ReaderLimits"/> entry: each is refused with a typed error naming the file and the limit.</summary>
public sealed class ReaderLimitsTests
{
    [Fact]
    public void AMillionNestedTuplesStopAtTheDepthLimitInsteadOfOverflowingTheStack()
    {
        WithFile(WriteArchive(CraftedFiles.NestedTuplePickle(1_000_000)), path =>
            AssertLimit(nameof(ReaderLimits.MaxPickleNestingDepth), path, () => PyTorchCheckpoint.Load(path)));
    }

    [Fact]
    public void ListsNestedBeforeTheyAreFilledAreMeasuredOnceTheWholePickleIsRead()
    {
        WithFile(WriteArchive(CraftedFiles.NestedListPickleFilledOutsideIn(300)), path =>
            AssertLimit(nameof(ReaderLimits.MaxPickleNestingDepth), path, () => PyTorchCheckpoint.Load(path)));
        WithFile(WriteArchive(CraftedFiles.NestedListPickleFilledOutsideIn(50)), path =>
        {
            var list = Assert.IsType<List<object?>>(PyTorchCheckpoint.Load(path));
            var depth = 1;
            for (; list.Count == 1; depth++) list = Assert.IsType<List<object?>>(list[0]);
            Assert.Equal(50, depth);
        });
    }

    [Fact]
    public void AListThatContainsItselfIsRefused()
    {
        WithFile(WriteArchive(CraftedFiles.SelfContainingListPickle()), path =>
        {
            var error = AssertLimit(nameof(ReaderLimits.MaxPickleNestingDepth), path, () => PyTorchCheckpoint.Load(path));
            Assert.Contains("contains itself", error.Message);
        });
    }

    [Fact]
    public void ListsSharedThroughTheMemoAreRefusedWhenTheirTreeIsTooLargeToWalk()
    {
        // 60 levels of [x, x] are 2^61 nodes to any recursive walk (materializing, disposing, flattening): refused.
        WithFile(WriteArchive(CraftedFiles.SharedListPickle(60)), path =>
            AssertLimit(nameof(ReaderLimits.MaxPickleTreeNodes), path, () => PyTorchCheckpoint.Load(path)));
        // 10 levels are 2^11 - 1 = 2047 lists as a tree: read at a limit of 2047, refused at 11 levels (4095).
        var limits = new ReaderLimits { MaxPickleTreeNodes = 2047 };
        WithFile(WriteArchive(CraftedFiles.SharedListPickle(10)), path =>
        {
            var root = Assert.IsType<List<object?>>(PyTorchCheckpoint.Load(path, limits: limits));
            Assert.Equal(2, root.Count);
        });
        WithFile(WriteArchive(CraftedFiles.SharedListPickle(11)), path =>
            AssertLimit(nameof(ReaderLimits.MaxPickleTreeNodes), path, () => PyTorchCheckpoint.Load(path, limits: limits)));
    }

    [Fact]
    public void ATupleKeyLargerThanTheKeyLimitIsRefused()
    {
        var limits = new ReaderLimits { MaxPickleKeyElements = 100 };
        WithFile(WriteArchive(CraftedFiles.TupleKeyPickle(101)), path =>
            AssertLimit(nameof(ReaderLimits.MaxPickleKeyElements), path, () => PyTorchCheckpoint.Load(path, limits: limits)));
        WithFile(WriteArchive(CraftedFiles.TupleKeyPickle(100)), path =>
            Assert.Equal(1, Assert.IsType<PickleDict>(PyTorchCheckpoint.Load(path, limits: limits)).Count));
    }

    [Fact]
    public void ATextIntegerWithMoreDigitsThanPythonAllowsIsRefused()
    {
        WithFile(WriteArchive(CraftedFiles.TextIntegerPickle(4301)), path =>
            AssertLimit(nameof(ReaderLimits.MaxPickleIntegerDigits), path, () => PyTorchCheckpoint.Load(path)));
        WithFile(WriteArchive(CraftedFiles.TextIntegerPickle(4300)), path =>
            Assert.IsType<System.Numerics.BigInteger>(PyTorchCheckpoint.Load(path)));
    }

    [Fact]
    public void AStrideZeroViewCannotExpandAOneElementStorage()
    {
        WithFile(CraftedFiles.ViewArchive(1, [1_000_000_000_000], [0]), path =>
        {
            var error = AssertLimit(nameof(ReaderLimits.MaxViewExpansion), path, () => PyTorchCheckpoint.Load(path));
            Assert.Contains("1000000000000 elements", error.Message);
        });
    }

    [Fact]
    public void AnOverlappingViewWithMoreElementsThanItsStorageIsRefusedButOneWithinItLoads()
    {
        WithFile(CraftedFiles.ViewArchive(4, [3, 2], [1, 1]), path =>
            AssertLimit(nameof(ReaderLimits.MaxViewExpansion), path, () => PyTorchCheckpoint.Load(path)));
        WithFile(CraftedFiles.ViewArchive(4, [2, 2], [1, 1]), path =>
        {
            using var tensor = Assert.IsType<TorchSharp.torch.Tensor>(PyTorchCheckpoint.Load(path), exactMatch: false);
            Assert.Equal(new long[] { 2, 2 }, tensor.shape);
        });
    }

    [Fact]
    public void ASavedExpandedViewLoadsOnlyWhenTheCallerRaisesTheViewExpansionLimit()
    {
        WithFile(CraftedFiles.ViewStateDictArchive(1, [4], [0]), path =>
        {
            AssertLimit(nameof(ReaderLimits.MaxViewExpansion), path, () => CheckpointLoader.LoadStateDict(path));
            var tensors = CheckpointLoader.LoadStateDict(path, new CheckpointLoadOptions { Limits = new ReaderLimits { MaxViewExpansion = 4 } });
            try
            {
                Assert.Equal(new float[] { 1, 1, 1, 1 }, tensors["w"].data<float>().ToArray());
            }
            finally
            {
                DisposeAll(tensors.Values);
            }
        });
    }

    [Fact]
    public void AViewWhoseSizeOverflowsSixtyFourBitsIsRefused()
    {
        WithFile(CraftedFiles.ViewArchive(1, [1L << 40, 1L << 40], [0, 0]), path =>
            Assert.Contains("overflows", Assert.Throws<CheckpointFormatException>(() => PyTorchCheckpoint.Load(path)).Message));
    }

    [Fact]
    public void AnArchiveWithMoreEntriesThanTheLimitIsRefused()
    {
        var limits = new ReaderLimits { MaxZipEntries = 2 };
        WithFile(CraftedFiles.ViewArchive(1, [1], [1]), path =>
            AssertLimit(nameof(ReaderLimits.MaxZipEntries), path, () => PyTorchCheckpoint.Load(path, limits: limits)));
    }

    [Fact]
    public void AZipEntryDeclaringFarMoreBytesThanItOccupiesIsRefusedBeforeAnythingIsAllocated()
    {
        WithFile(WriteArchive(CraftedFiles.NestedTuplePickle(3)), path =>
        {
            CraftedFiles.DeclareUncompressedSize(path, "archive/data.pkl", 0x7FFF_FFF0);
            AssertLimit(nameof(ReaderLimits.MaxZipCompressionRatio), path, () => PyTorchCheckpoint.Load(path));
        });
    }

    [Fact]
    public void ACompressedNpzEntryBeyondTheRatioLimitIsRefused()
    {
        var path = TemporaryPath(".npz");
        using (var archive = ZipFile.Open(path, ZipArchiveMode.Create))
        using (var entry = archive.CreateEntry("zeros.npy", CompressionLevel.SmallestSize).Open())
        {
            entry.Write(NpyFormat.BuildHeader(new NpyHeader(TorchSharp.torch.ScalarType.Byte, false, [1 << 20])));
            entry.Write(new byte[1 << 20]);
        }
        WithFile(path, _ =>
        {
            AssertLimit(nameof(ReaderLimits.MaxZipCompressionRatio), path, () => NpzReader.Open(path, new ReaderLimits { MaxZipCompressionRatio = 50 }));
            using var zeros = NpzReader.LoadAll(path)["zeros"];
            Assert.Equal(1 << 20, zeros.numel());
        });
    }

    [Fact]
    public void APickleLargerThanTheLimitIsRefused()
    {
        WithFile(WriteArchive(CraftedFiles.TextIntegerPickle(100)), path =>
            AssertLimit(nameof(ReaderLimits.MaxPickleBytes), path, () => PyTorchCheckpoint.Load(path, limits: new ReaderLimits { MaxPickleBytes = 64 })));
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "outside")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 16, "outside")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 16, "outside")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 16, "overlap")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}""", 16, "overflows")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""", 16, "data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":"two","data_offsets":[0,8]}}""", 16, "malformed")]
    [InlineData("""[1,2]""", 16, "not a JSON object")]
    public void SafeTensorsOffsetsMustLieWithinTheDataAndNotOverlap(string header, int dataBytes, string expected)
    {
        WithFile(CraftedFiles.SafeTensorsFile(header, dataBytes), path =>
        {
            var error = Assert.Throws<CheckpointFormatException>(() => SafeTensors.Load(path));
            Assert.Contains(expected, error.Message);
            Assert.Contains(path, error.Message);
        });
    }

    [Fact]
    public void ASafeTensorsHeaderLongerThanTheLimitOrTheFileIsRefused()
    {
        var header = """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""";
        WithFile(CraftedFiles.SafeTensorsFile(header, 4), path =>
        {
            AssertLimit(nameof(ReaderLimits.MaxSafeTensorsHeaderBytes), path, () => SafeTensors.Load(path, new ReaderLimits { MaxSafeTensorsHeaderBytes = 16 }));
            using var tensors = new DisposableTensors(SafeTensors.Load(path));
            Assert.Single(tensors.Values);
        });
        WithFile(CraftedFiles.SafeTensorsFile(header, 4), path =>
        {
            var bytes = File.ReadAllBytes(path);
            BitConverter.GetBytes(50_000_000L).CopyTo(bytes, 0);
            File.WriteAllBytes(path, bytes);
            Assert.Contains("header length", Assert.Throws<CheckpointFormatException>(() => SafeTensors.Load(path)).Message);
        });
    }

    [Fact]
    public void AnNpyVersionTwoHeaderLengthBeyondTheLimitIsRefusedBeforeItIsAllocated()
    {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
        WithFile(CraftedFiles.NpyFile(2, header, new byte[4], declaredHeaderLength: 0xFFFF_FFF0), path =>
            AssertLimit(nameof(ReaderLimits.MaxNpyHeaderBytes), path, () => NpzReader.LoadAll(path)));
        WithFile(CraftedFiles.NpyFile(2, header, new byte[4]), path =>
        {
            using var array = NpzReader.LoadAll(path)["arr_0"];
            Assert.Equal(1, array.numel());
        });
    }

    [Fact]
    public void AnNpyShapeNeedingMoreBytesThanTheFileHoldsIsRefusedBeforeItIsAllocated()
    {
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }\n";
        WithFile(CraftedFiles.NpyFile(1, header, new byte[64]), path =>
            Assert.Contains("declares 80000000000 data bytes", Assert.Throws<CheckpointFormatException>(() => NpzReader.LoadAll(path)).Message));
    }

    [Fact]
    public void AnNpyShapeWithMoreDimensionsThanTheLimitIsRefused()
    {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + string.Concat(Enumerable.Repeat("1, ", 65)) + "), }\n";
        WithFile(CraftedFiles.NpyFile(1, header, new byte[4]), path =>
            AssertLimit(nameof(ReaderLimits.MaxDimensions), path, () => NpzReader.LoadAll(path)));
    }

    [Fact]
    public void DeeplyNestedYamlFlowSequencesAreRefusedBeforeYamlDotNetRecurses()
    {
        var error = Assert.Throws<ConfigException>(() => RaeConfig.Parse(CraftedFiles.DeepFlowSequenceYaml(200_000), "deep.yaml"));
        Assert.Contains("deep.yaml", error.Message);
        Assert.Contains("nest deeper than 64 levels", error.Message);
        var overrideError = Assert.Throws<ConfigException>(() =>
            RaeConfig.Parse("misc: {}\n", "base.yaml", ["misc.deep=" + new string('[', 100_000)]));
        Assert.Contains("nest deeper", overrideError.Message);
    }

    [Fact]
    public void YamlAliasesThatExpandExponentiallyAreRefused()
    {
        var lines = new List<string> { "misc:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]" };
        for (var level = 1; level <= 5; level++)
            lines.Add($"  a{level}: &a{level} [{string.Join(", ", Enumerable.Repeat($"*a{level - 1}", 10))}]");
        var error = Assert.Throws<ConfigException>(() => RaeConfig.Parse(string.Join("\n", lines) + "\n", "laughs.yaml"));
        Assert.Contains("laughs.yaml:6", error.Message); // a4 = 1 + 10 × 11111 nodes
        Assert.Contains("YamlNestingGuard.MaxExpandedNodes", error.Message);
    }

    [Fact]
    public void YamlNestedWithinTheLimitReachesTheSchemaChecks()
    {
        // 30 levels pass the guard and are built by YamlDotNet; the schema then names the key it does not know.
        var error = Assert.Throws<ConfigException>(() => RaeConfig.Parse(CraftedFiles.DeepFlowSequenceYaml(30), "shallow.yaml"));
        Assert.Contains("unknown key", error.Message);
        Assert.DoesNotContain("nest deeper", error.Message);
    }

    [Theory]
    [InlineData(new long[] { -2, -2 }, "negative")]
    [InlineData(new long[] { 1L << 40, 1L << 40 }, "overflows")]
    public void OnnxInitializerDimsMustBeNonNegativeAndNotOverflow(long[] dims, string expected)
    {
        var tensor = new ProtobufWriter().PackedVarints(1, dims).Varint(2, (long)OnnxDataType.Float).String(8, "w").Bytes(9, new byte[16]);
        var error = Assert.Throws<InvalidDataException>(() => OnnxReader.Parse(OnnxTestModels.Model([tensor]), "crafted.onnx"));
        Assert.Contains(expected, error.Message);
    }

    private static CheckpointFormatException AssertLimit(string limit, string path, Func<object?> read)
    {
        var error = Assert.Throws<CheckpointFormatException>(() => DisposeResult(read()));
        Assert.Equal(limit, error.Limit);
        Assert.Contains($"ReaderLimits.{limit}", error.Message);
        Assert.Contains(path, error.Message);
        return error;
    }

    private static void DisposeResult(object? value)
    {
        if (value is IDisposable disposable) disposable.Dispose();
    }

    private static void WithFile(string path, Action<string> use)
    {
        try
        {
            use(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class DisposableTensors(Dictionary<string, TorchSharp.torch.Tensor> tensors) : IDisposable
    {
        public IReadOnlyCollection<TorchSharp.torch.Tensor> Values => tensors.Values;

        public void Dispose() => DisposeAll(tensors.Values);
    }
}
