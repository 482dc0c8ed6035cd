using RAE.Models.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>Maps torchvision-style state_dict keys to the ONNX initializers of a <see cref="ResNetOnnxLayout"/> and copies them.</summary>
public static class ResNetOnnxWeights
{
    /// <summary>state_dict key → initializer name, for every weight and running statistic of the network.</summary>
    public static Dictionary<string, string> KeyToInitializer(ResNetOnnxLayout layout)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        AddConv(map, "conv1", layout.StemConv);
        AddBatchNorm(map, "bn1", layout.StemBn);
        for (var stage = 0; stage < layout.Stages.Count; stage++)
        {
            var blocks = layout.Stages[stage].Blocks;
            for (var index = 0; index < blocks.Count; index++)
            {
                var prefix = $"layer{stage + 1}.{index}";
                var block = blocks[index];
                AddConv(map, $"{prefix}.conv1", block.Conv1);
                AddBatchNorm(map, $"{prefix}.bn1", block.Bn1);
                AddConv(map, $"{prefix}.conv2", block.Conv2);
                AddBatchNorm(map, $"{prefix}.bn2", block.Bn2);
                if (block.Downsample is var (conv, bn))
                {
                    AddConv(map, $"{prefix}.downsample.0", conv);
                    AddBatchNorm(map, $"{prefix}.downsample.1", bn);
                }
            }
        }
        return map;
    }

    /// <summary>
    /// Copies every mapped initializer into the module's state_dict entry of the same key. Fails if a key of the module
    /// has no initializer, an initializer has no key, shapes differ, or an initializer of the graph is left unused.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Load(nn.Module module, ResNetOnnxLayout layout, OnnxModel model)
    {
        var map = KeyToInitializer(layout);
        var state = module.state_dict();
        var missing = state.Keys.Where(key => !map.ContainsKey(key)).ToList();
        var unknown = map.Keys.Where(key => !state.ContainsKey(key)).ToList();
        if (missing.Count > 0 || unknown.Count > 0)
            throw new InvalidDataException(
                $"{model.SourceName}: the ResNet port and the graph disagree: module keys without an initializer [{string.Join(", ", missing)}], " +
                $"initializer mappings without a module key [{string.Join(", ", unknown)}]");
        var unused = model.Graph.Initializers.Keys.Except(map.Values).ToList();
        if (unused.Count > 0)
            throw new InvalidDataException($"{model.SourceName}: initializers not used by the ResNet port: [{string.Join(", ", unused)}]");

        using var noGrad = no_grad();
        foreach (var (key, initializerName) in map)
        {
            var source = model.Graph.Initializer(initializerName);
            var target = state[key];
            if (!source.Dims.SequenceEqual(target.shape))
                throw new InvalidDataException(
                    $"{model.SourceName}: initializer '{initializerName}' has shape [{string.Join(", ", source.Dims)}] but '{key}' needs [{string.Join(", ", target.shape)}]");
            using var values = source.ToTensor();
            target.copy_(values);
        }
        return map;
    }

    private static void AddConv(Dictionary<string, string> map, string prefix, ConvSpec conv) =>
        map.Add($"{prefix}.weight", conv.WeightName);

    private static void AddBatchNorm(Dictionary<string, string> map, string prefix, BatchNormSpec bn)
    {
        map.Add($"{prefix}.weight", bn.ScaleName);
        map.Add($"{prefix}.bias", bn.BiasName);
        map.Add($"{prefix}.running_mean", bn.MeanName);
        map.Add($"{prefix}.running_var", bn.VarianceName);
    }
}
