using RAE.Models.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>
/// The ML.NET ResNet preprocessing graph (ResNetPreprocess.onnx, shipped beside ResNet18.onnx): it takes RGB pixels in
/// [0, 255] (ML.NET's ExtractPixels without scaling), splits the channels, concatenates them as B, G, R and subtracts a
/// per-pixel BGR mean image [1, 3, 224, 224]. This class checks that exact structure and keeps the mean image.
/// </summary>
public sealed class ResNetOnnxPreprocessing
{
    private ResNetOnnxPreprocessing(string inputName, string outputName, float[] meanImageBgr, long height, long width)
    {
        InputName = inputName;
        OutputName = outputName;
        MeanImageBgr = meanImageBgr;
        Height = height;
        Width = width;
    }

    public string InputName { get; }

    public string OutputName { get; }

    /// <summary>The mean image in BGR channel order, row-major [3, Height, Width].</summary>
    public IReadOnlyList<float> MeanImageBgr { get; }

    public long Height { get; }

    public long Width { get; }

    /// <summary>Mean of the mean image per channel, in RGB order (0..255 scale).</summary>
    public float[] ChannelAveragesRgb()
    {
        var plane = Height * Width;
        var averages = new float[3];
        for (var bgrChannel = 0; bgrChannel < 3; bgrChannel++)
        {
            double sum = 0;
            for (var i = 0L; i < plane; i++) sum += MeanImageBgr[(int)(bgrChannel * plane + i)];
            averages[2 - bgrChannel] = (float)(sum / plane);
        }
        return averages;
    }

    /// <summary>The mean image as a new CPU tensor [1, 3, Height, Width] in BGR order.</summary>
    public Tensor MeanImageTensor() => tensor(MeanImageBgr.ToArray(), [1, 3, Height, Width]);

    public static ResNetOnnxPreprocessing Load(string path) => FromModel(OnnxReader.Load(path));

    public static ResNetOnnxPreprocessing FromModel(OnnxModel model)
    {
        var graph = model.Graph;
        string Problem(string detail) => $"{model.SourceName}: not the expected RGB-to-BGR mean-subtraction graph: {detail}";
        var ops = string.Join(", ", graph.Nodes.Select(n => n.OpType));
        if (ops != "Split, Concat, Sub") throw new InvalidDataException(Problem($"nodes are [{ops}], expected [Split, Concat, Sub]"));
        var (split, concat, sub) = (graph.Nodes[0], graph.Nodes[1], graph.Nodes[2]);
        var input = graph.FedInputs.SingleOrDefault()
            ?? throw new InvalidDataException(Problem("expected exactly one fed input"));
        if (split.Inputs.SingleOrDefault() != input.Name || split.Int("axis", 0) != 1 || split.Outputs.Count != 3)
            throw new InvalidDataException(Problem($"{split.Describe()} must split the input along axis 1 into 3 channels"));
        if (split.Ints("split", [1, 1, 1]).Any(size => size != 1))
            throw new InvalidDataException(Problem($"{split.Describe()} must split into single channels"));
        if (concat.Int("axis", 0) != 1 || !concat.Inputs.SequenceEqual(split.Outputs.Reverse()))
            throw new InvalidDataException(Problem($"{concat.Describe()} must concatenate the split channels in reverse order"));
        if (sub.Inputs.Count != 2 || sub.Inputs[0] != concat.Outputs[0] || !graph.Initializers.TryGetValue(sub.Inputs[1], out var mean))
            throw new InvalidDataException(Problem($"{sub.Describe()} must subtract an initializer from the reordered image"));
        if (mean.DataType != OnnxDataType.Float || mean.Dims.Count != 4 || mean.Dims[0] != 1 || mean.Dims[1] != 3)
            throw new InvalidDataException(Problem($"mean image '{mean.Name}' must be float [1, 3, H, W], found {mean.DataType} [{string.Join(", ", mean.Dims)}]"));
        var output = graph.Outputs.SingleOrDefault()?.Name ?? sub.Outputs[0];
        return new ResNetOnnxPreprocessing(input.Name, output, mean.ToFloatArray(), mean.Dims[2], mean.Dims[3]);
    }
}
