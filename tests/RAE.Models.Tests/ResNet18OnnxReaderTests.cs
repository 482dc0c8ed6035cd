using RAE.Models.Onnx;
using RAE.Models.Stage1.Encoders;

namespace RAE.Models.Tests;

public sealed class ResNet18OnnxReaderTests
{
    private static readonly Lazy<OnnxModel> Featurizer = new(() => OnnxReader.Load(ResNet18EncoderOptions.DefaultModelPath));

    [Fact]
    public void OnnxFiles_AreCopiedToTheOutputByTheBuild()
    {
        Assert.True(File.Exists(ResNet18EncoderOptions.DefaultModelPath), ResNet18EncoderOptions.DefaultModelPath);
        Assert.True(File.Exists(ResNet18EncoderOptions.DefaultPreprocessModelPath), ResNet18EncoderOptions.DefaultPreprocessModelPath);
    }

    [Fact]
    public void Reader_ReadsTheFeaturizerGraph()
    {
        var model = Featurizer.Value;
        Assert.Equal(3, model.IrVersion);
        Assert.Equal("CNTK", model.ProducerName);
        Assert.Equal(8, model.OpsetImports[""]);

        var input = Assert.Single(model.Graph.FedInputs);
        Assert.Equal("Input247", input.Name);
        Assert.Equal(OnnxDataType.Float, input.ElementType);
        Assert.Equal(new long?[] { 1, 3, 224, 224 }, input.Shape!.Select(d => d.Value));
        var output = Assert.Single(model.Graph.Outputs);
        Assert.Equal("Pooling395_Output_0", output.Name);
        Assert.Equal(new long?[] { 1, 512, 1, 1 }, output.Shape!.Select(d => d.Value));

        var ops = model.Graph.Nodes.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(
            new Dictionary<string, int> { ["Conv"] = 22, ["BatchNormalization"] = 22, ["Relu"] = 19, ["Add"] = 9, ["MaxPool"] = 1, ["AveragePool"] = 1 },
            ops);
        Assert.Equal(110, model.Graph.Initializers.Count);
        Assert.All(model.Graph.Initializers.Values, t => Assert.Equal(OnnxDataType.Float, t.DataType));

        var stem = model.Graph.Nodes[0];
        Assert.Equal("Conv", stem.OpType);
        Assert.Equal(new long[] { 3, 3, 2, 2 }, stem.RequiredInts("pads"));
        Assert.Equal(new long[] { 64, 3, 7, 7 }, model.Graph.Initializer(stem.Inputs[1]).Dims);
        Assert.Equal(1e-5f, model.Graph.Nodes[1].Float("epsilon", 0f), 6);
    }

    [Fact]
    public void Reader_DecodesRawPackedUnpackedAndInt64TensorData()
    {
        var bytes = OnnxTestModels.Model(
        [
            Tensor("raw", OnnxDataType.Float, [2]).Bytes(9, [.. BitConverter.GetBytes(1.5f), .. BitConverter.GetBytes(-2f)]),
            Tensor("packed", OnnxDataType.Float, [3]).PackedFloats(4, 0.25f, 3f, -7.5f),
            Tensor("unpacked", OnnxDataType.Float, [2]).Fixed32(4, 4f).Fixed32(4, 5f),
            Tensor("longs", OnnxDataType.Int64, [2]).PackedVarints(7, -3, 1L << 40),
        ]);

        var graph = OnnxReader.Parse(bytes, "hand-built").Graph;

        Assert.Equal([1.5f, -2f], graph.Initializer("raw").ToFloatArray());
        Assert.Equal([0.25f, 3f, -7.5f], graph.Initializer("packed").ToFloatArray());
        Assert.Equal([4f, 5f], graph.Initializer("unpacked").ToFloatArray());
        using var longs = graph.Initializer("longs").ToTensor();
        Assert.Equal(new[] { -3L, 1L << 40 }, longs.data<long>().ToArray());
    }

    [Fact]
    public void Reader_ReadsNodeAttributes()
    {
        var node = new ProtobufWriter().String(1, "x").String(2, "y").String(3, "pool").String(4, "MaxPool")
            .Message(5, new ProtobufWriter().String(1, "pads").PackedVarints(8, 1, 1, 0, 0).Varint(20, (long)OnnxAttributeType.Ints))
            .Message(5, new ProtobufWriter().String(1, "epsilon").Fixed32(2, 0.5f).Varint(20, (long)OnnxAttributeType.Float))
            .Message(5, new ProtobufWriter().String(1, "auto_pad").String(4, "NOTSET").Varint(20, (long)OnnxAttributeType.String));

        var parsed = Assert.Single(OnnxReader.Parse(OnnxTestModels.Model([], [node]), "hand-built").Graph.Nodes);

        Assert.Equal(("pool", "MaxPool"), (parsed.Name, parsed.OpType));
        Assert.Equal(new long[] { 1, 1, 0, 0 }, parsed.RequiredInts("pads"));
        Assert.Equal(0.5f, parsed.Float("epsilon", 0f));
        Assert.Equal("NOTSET", parsed.String("auto_pad", ""));
        var wrongType = Assert.Throws<InvalidDataException>(() => parsed.Int("pads", 0));
        Assert.Contains("'pads'", wrongType.Message);
    }

    [Fact]
    public void Reader_RejectsExternalTensorData()
    {
        var bytes = OnnxTestModels.Model([Tensor("weights", OnnxDataType.Float, [4]).Varint(14, 1)]);

        var error = Assert.Throws<NotSupportedException>(() => OnnxReader.Parse(bytes, "external.onnx"));

        Assert.Contains("'weights'", error.Message);
        Assert.Contains("external", error.Message);
    }

    [Fact]
    public void Reader_RejectsGraphValuedAttributes()
    {
        var node = new ProtobufWriter().String(4, "If")
            .Message(5, new ProtobufWriter().String(1, "then_branch").Message(6, new ProtobufWriter()).Varint(20, (long)OnnxAttributeType.Graph));

        var error = Assert.Throws<NotSupportedException>(() => OnnxReader.Parse(OnnxTestModels.Model([], [node]), "branchy.onnx"));

        Assert.Contains("'then_branch'", error.Message);
        Assert.Contains("Graph", error.Message);
    }

    [Fact]
    public void Reader_RejectsTensorWhoseDataDoesNotMatchItsShape()
    {
        var bytes = OnnxTestModels.Model([Tensor("short", OnnxDataType.Float, [3]).PackedFloats(4, 1f, 2f)]);

        var error = Assert.Throws<InvalidDataException>(() => OnnxReader.Parse(bytes, "short.onnx"));

        Assert.Contains("'short'", error.Message);
    }

    [Fact]
    public void Reader_RejectsTruncatedFile()
    {
        var truncated = File.ReadAllBytes(ResNet18EncoderOptions.DefaultPreprocessModelPath)[..4000];

        var error = Assert.Throws<InvalidDataException>(() => OnnxReader.Parse(truncated, "truncated.onnx"));

        Assert.Contains("truncated.onnx", error.Message);
    }

    [Fact]
    public void Reader_MissingFile_NamesThePath()
    {
        var path = Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.onnx");

        var error = Assert.Throws<FileNotFoundException>(() => OnnxReader.Load(path));

        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Preprocessing_IsRgbToBgrMinusAMeanImage()
    {
        var preprocessing = ResNetOnnxPreprocessing.Load(ResNet18EncoderOptions.DefaultPreprocessModelPath);

        Assert.Equal(("OriginalInput", "PreprocessedInput"), (preprocessing.InputName, preprocessing.OutputName));
        Assert.Equal((224L, 224L), (preprocessing.Height, preprocessing.Width));
        var averages = preprocessing.ChannelAveragesRgb();
        // Caffe/CNTK ImageNet means are about R 123, G 116, B 103 on the 0..255 scale.
        Assert.InRange(averages[0], 120f, 126f);
        Assert.InRange(averages[1], 113f, 119f);
        Assert.InRange(averages[2], 100f, 106f);
    }

    [Fact]
    public void Layout_RejectsAGraphThatIsNotAResNet()
    {
        var preprocessGraph = OnnxReader.Load(ResNet18EncoderOptions.DefaultPreprocessModelPath).Graph;

        var error = Assert.Throws<InvalidDataException>(() => ResNetOnnxLayout.FromGraph(preprocessGraph));

        Assert.Contains("not a supported ResNet", error.Message);
        Assert.Contains("'OriginalInput'", error.Message);
    }

    [Fact]
    public void Preprocessing_RejectsAGraphThatIsNotTheMeanSubtraction()
    {
        var error = Assert.Throws<InvalidDataException>(() => ResNetOnnxPreprocessing.FromModel(Featurizer.Value));

        Assert.Contains("ResNet18.onnx", error.Message);
        Assert.Contains("expected [Split, Concat, Sub]", error.Message);
    }

    private static ProtobufWriter Tensor(string name, OnnxDataType type, long[] dims) =>
        new ProtobufWriter().PackedVarints(1, dims).Varint(2, (long)type).String(8, name);
}
