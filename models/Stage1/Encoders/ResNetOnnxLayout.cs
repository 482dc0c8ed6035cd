using RAE.Models.Onnx;

namespace RAE.Models.Stage1.Encoders;

/// <summary>A bias-free convolution as the graph declares it. Pads follow ONNX: top, left, bottom, right.</summary>
public sealed record ConvSpec(string WeightName, long InChannels, long OutChannels, long Kernel, long Stride, long[] Pads);

/// <summary>An inference BatchNormalization: initializer names of scale, bias, running mean and running variance.</summary>
public sealed record BatchNormSpec(string ScaleName, string BiasName, string MeanName, string VarianceName, double Epsilon);

/// <summary>A basic residual block: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)); shortcut is identity or conv+bn.</summary>
public sealed record BasicBlockSpec(
    ConvSpec Conv1,
    BatchNormSpec Bn1,
    ConvSpec Conv2,
    BatchNormSpec Bn2,
    (ConvSpec Conv, BatchNormSpec Bn)? Downsample,
    string OutputName);

/// <summary>A stage (torchvision's layerN): its blocks, the name of its output value in the graph and its total stride.</summary>
public sealed record StageSpec(IReadOnlyList<BasicBlockSpec> Blocks, string OutputName, long Channels, long CumulativeStride);

/// <summary>The final pooling of the featurizer graph (its declared output).</summary>
public sealed record AveragePoolSpec(long Kernel, long Stride, string OutputName);

/// <summary>
/// The ResNet structure recovered from an ONNX graph by following the data flow from the graph input: stem
/// (Conv, BatchNormalization, Relu, MaxPool), then basic residual blocks. A block whose shortcut is a 1x1 projection (or
/// whose first convolution is strided) starts a new stage. Node names and file order play no part, only the wiring.
/// </summary>
public sealed record ResNetOnnxLayout(
    string InputName,
    ConvSpec StemConv,
    BatchNormSpec StemBn,
    long MaxPoolKernel,
    long MaxPoolStride,
    long[] MaxPoolPads,
    IReadOnlyList<StageSpec> Stages,
    AveragePoolSpec? FinalPool)
{
    public static ResNetOnnxLayout FromGraph(OnnxGraph graph) => new GraphWalker(graph).Walk();

    private sealed class GraphWalker(OnnxGraph graph)
    {
        private readonly ILookup<string, OnnxNode> _consumers = graph.Nodes
            .SelectMany(node => node.Inputs.Distinct().Select(input => (input, node)))
            .ToLookup(pair => pair.input, pair => pair.node, StringComparer.Ordinal);

        public ResNetOnnxLayout Walk()
        {
            var fedInputs = graph.FedInputs.ToList();
            if (fedInputs.Count != 1)
                throw Unexpected($"one fed graph input, found {fedInputs.Count} ({string.Join(", ", fedInputs.Select(i => i.Name))})");
            var input = fedInputs[0].Name;

            var stemConvNode = OnlyConsumer(input, "Conv");
            var stemConv = Conv(stemConvNode);
            var stemBnNode = OnlyConsumer(stemConvNode.Outputs[0], "BatchNormalization");
            var stemReluNode = OnlyConsumer(stemBnNode.Outputs[0], "Relu");
            var maxPool = OnlyConsumer(stemReluNode.Outputs[0], "MaxPool");
            var poolKernel = Square(maxPool, "kernel_shape", maxPool.RequiredInts("kernel_shape"));
            var poolStride = Square(maxPool, "strides", maxPool.Ints("strides", [1, 1]));
            var poolPads = Pads(maxPool);
            if (maxPool.Int("ceil_mode", 0) != 0) throw Unsupported(maxPool, "ceil_mode");

            var stages = new List<StageSpec>();
            var blocks = new List<BasicBlockSpec>();
            var current = maxPool.Outputs[0];
            var stride = stemConv.Stride * poolStride;
            long channels = stemConv.OutChannels;
            while (_consumers[current].Any(node => node.OpType == "Conv"))
            {
                var block = Block(current);
                if ((block.Downsample is not null || block.Conv1.Stride != 1) && blocks.Count > 0)
                {
                    stages.Add(new StageSpec(blocks, current, channels, stride));
                    blocks = [];
                }
                blocks.Add(block);
                stride *= block.Conv1.Stride;
                channels = block.Conv2.OutChannels;
                current = block.OutputName;
            }
            if (blocks.Count == 0) throw Unexpected($"residual blocks after the stem's MaxPool '{maxPool.Name}', found none");
            stages.Add(new StageSpec(blocks, current, channels, stride));

            AveragePoolSpec? finalPool = null;
            var tail = _consumers[current].ToList();
            if (tail.Count == 1 && tail[0].OpType == "AveragePool")
            {
                var pool = tail[0];
                if (pool.Ints("pads", [0, 0, 0, 0]).Any(p => p != 0)) throw Unsupported(pool, "pads");
                finalPool = new AveragePoolSpec(
                    Square(pool, "kernel_shape", pool.RequiredInts("kernel_shape")),
                    Square(pool, "strides", pool.Ints("strides", [1, 1])),
                    pool.Outputs[0]);
            }
            return new ResNetOnnxLayout(
                input, stemConv, BatchNorm(stemBnNode), poolKernel, poolStride, poolPads, stages, finalPool);
        }

        private BasicBlockSpec Block(string input)
        {
            var convs = _consumers[input].Where(node => node.OpType == "Conv").ToList();
            if (convs.Count is not (1 or 2))
                throw Unexpected($"one or two Conv nodes reading '{input}', found {convs.Count}");
            // The main path's first BatchNormalization feeds a Relu; a projection shortcut's feeds the Add directly.
            var mainConv = convs.SingleOrDefault(conv => OnlyConsumer(conv.Outputs[0], "BatchNormalization") is var bn
                    && _consumers[bn.Outputs[0]].Any(node => node.OpType == "Relu"))
                ?? throw Unexpected($"a Conv, BatchNormalization, Relu main path reading '{input}'");
            var bn1 = OnlyConsumer(mainConv.Outputs[0], "BatchNormalization");
            var relu1 = OnlyConsumer(bn1.Outputs[0], "Relu");
            var conv2 = OnlyConsumer(relu1.Outputs[0], "Conv");
            var bn2 = OnlyConsumer(conv2.Outputs[0], "BatchNormalization");
            var add = OnlyConsumer(bn2.Outputs[0], "Add");
            var shortcut = add.Inputs.Single(name => name != bn2.Outputs[0]);

            (ConvSpec, BatchNormSpec)? downsample = null;
            if (shortcut != input)
            {
                var projection = convs.SingleOrDefault(conv => conv != mainConv)
                    ?? throw Unexpected($"'{add.Name}' to add '{input}' or a projection of it, found '{shortcut}'");
                var projectionBn = OnlyConsumer(projection.Outputs[0], "BatchNormalization");
                if (projectionBn.Outputs[0] != shortcut)
                    throw Unexpected($"'{add.Name}' to add the projection '{projectionBn.Outputs[0]}', found '{shortcut}'");
                downsample = (Conv(projection), BatchNorm(projectionBn));
            }
            else if (convs.Count != 1)
            {
                throw Unexpected($"an identity block at '{input}' to have one Conv reader, found {convs.Count}");
            }
            var relu2 = OnlyConsumer(add.Outputs[0], "Relu");
            return new BasicBlockSpec(Conv(mainConv), BatchNorm(bn1), Conv(conv2), BatchNorm(bn2), downsample, relu2.Outputs[0]);
        }

        private OnnxNode OnlyConsumer(string value, string opType)
        {
            var readers = _consumers[value].ToList();
            if (readers.Count != 1 || readers[0].OpType != opType)
                throw Unexpected($"'{value}' to be read by exactly one {opType} node, found [{string.Join(", ", readers.Select(r => r.Describe()))}]");
            return readers[0];
        }

        private ConvSpec Conv(OnnxNode node)
        {
            if (node.Inputs.Count != 2) throw Unsupported(node, "a bias input");
            if (node.Int("group", 1) != 1) throw Unsupported(node, "group");
            if (node.Ints("dilations", [1, 1]).Any(d => d != 1)) throw Unsupported(node, "dilations");
            if (node.String("auto_pad", "NOTSET") != "NOTSET") throw Unsupported(node, "auto_pad");
            var weight = graph.Initializer(node.Inputs[1]);
            if (weight.Dims.Count != 4 || weight.DataType != OnnxDataType.Float)
                throw Unexpected($"{node.Describe()} to have a float weight of rank 4, found {weight.DataType} [{string.Join(", ", weight.Dims)}]");
            var kernel = Square(node, "kernel_shape", node.Ints("kernel_shape", [weight.Dims[2], weight.Dims[3]]));
            if (weight.Dims[2] != kernel || weight.Dims[3] != kernel)
                throw Unexpected($"{node.Describe()} kernel_shape {kernel} to match its weight [{string.Join(", ", weight.Dims)}]");
            var stride = Square(node, "strides", node.Ints("strides", [1, 1]));
            return new ConvSpec(weight.Name, weight.Dims[1], weight.Dims[0], kernel, stride, Pads(node));
        }

        private BatchNormSpec BatchNorm(OnnxNode node)
        {
            if (node.Inputs.Count != 5) throw Unexpected($"{node.Describe()} to have 5 inputs");
            if (node.Int("spatial", 1) != 1) throw Unsupported(node, "spatial=0");
            if (node.Outputs.Count != 1) throw Unsupported(node, "training-mode outputs");
            foreach (var parameter in node.Inputs.Skip(1)) graph.Initializer(parameter);
            return new BatchNormSpec(node.Inputs[1], node.Inputs[2], node.Inputs[3], node.Inputs[4], node.Float("epsilon", 1e-5f));
        }

        private long[] Pads(OnnxNode node)
        {
            if (node.String("auto_pad", "NOTSET") != "NOTSET") throw Unsupported(node, "auto_pad");
            var pads = node.Ints("pads", [0, 0, 0, 0]);
            if (pads.Count != 4 || pads.Any(p => p < 0)) throw Unsupported(node, $"pads [{string.Join(", ", pads)}]");
            return [.. pads];
        }

        private long Square(OnnxNode node, string attribute, IReadOnlyList<long> values)
        {
            if (values.Count != 2 || values[0] != values[1])
                throw Unsupported(node, $"non-square {attribute} [{string.Join(", ", values)}]");
            return values[0];
        }

        private InvalidDataException Unexpected(string expectation) =>
            new($"ONNX graph '{graph.Name}' is not a supported ResNet: expected {expectation}");

        private static NotSupportedException Unsupported(OnnxNode node, string feature) =>
            new($"{node.Describe()} uses {feature}, which the TorchSharp ResNet port does not support");
    }
}
