using System.Globalization;
using RAE.Models.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>
/// LPIPS with the VGG16 backbone as the reference's <c>disc/lpips.py</c> builds it (spec §4.6): a scaling layer, the
/// torchvision VGG16 features cut into five slices ending at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, channel-unit
/// normalisation, squared differences, a 1x1 conv per slice (<c>lin{k}.model.1</c>, after an eval-inactive Dropout) and a
/// spatial mean, summed over the slices. Inputs are images in [−1,1]. State-dict keys are the reference's (33 tensors);
/// every parameter is frozen, but gradients flow to the inputs.
/// </summary>
public sealed class Lpips : nn.Module<Tensor, Tensor, Tensor>, IPerceptualLoss
{
    public static readonly IReadOnlyList<int> SliceChannels = [64, 128, 256, 512, 512];

    /// <summary>The torchvision <c>features</c> index range [start, end) of each slice.</summary>
    public static readonly IReadOnlyList<(int Start, int End)> SliceRanges = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)];

    public static readonly IReadOnlyList<string> SliceNames = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"];

    private static readonly float[] Shift = [-0.030f, -0.088f, -0.188f];
    private static readonly float[] Scale = [0.458f, 0.448f, 0.450f];
    private const double NormalizeEps = 1e-10;

    private readonly ScalingLayer _scaling;
    private readonly Vgg16Slices _net;
    private readonly LinLayer[] _lins;

    public Lpips() : base("LPIPS")
    {
        _scaling = new ScalingLayer();
        _net = new Vgg16Slices();
        _lins = SliceChannels.Select(channels => new LinLayer(channels)).ToArray();
        register_module("scaling_layer", _scaling);
        register_module("net", _net);
        for (var k = 0; k < _lins.Length; k++) register_module($"lin{k}", _lins[k]);
        foreach (var parameter in parameters()) parameter.requires_grad = false;
        eval();
    }

    public string Name => "lpips";

    /// <summary>Per-sample distances [B,1,1,1] of images [B,3,H,W] in [−1,1].</summary>
    public override Tensor forward(Tensor in0, Tensor in1) => PerSample(in0, in1);

    /// <summary>The batch mean, as the training step calls <c>lpips(2·images − 1, 2·recon − 1)</c>.</summary>
    public Tensor Loss(Tensor in0, Tensor in1)
    {
        using var perSample = PerSample(in0, in1);
        return perSample.mean();
    }

    Tensor IPerceptualLoss.PerSample(Tensor in0, Tensor in1) => PerSample(in0, in1);

    /// <summary>
    /// Per-sample distances; <paramref name="trace"/> receives the reference's intermediate tensors by their fixture names
    /// (scaled.in0/in1, net.in0/in1.relu5_3, diff.k, lin.k, contrib.k) and must not keep them beyond the call.
    /// </summary>
    public Tensor PerSample(Tensor in0, Tensor in1, Action<string, Tensor>? trace = null)
    {
        if (in0.dim() != 4 || in0.shape[1] != 3 || !in0.shape.SequenceEqual(in1.shape))
            throw new ArgumentException($"LPIPS expects two image batches [B,3,H,W] of one shape, got [{string.Join(",", in0.shape)}] and [{string.Join(",", in1.shape)}]");
        using var scope = NewDisposeScope();
        var scaled0 = _scaling.forward(in0);
        var scaled1 = _scaling.forward(in1);
        trace?.Invoke("scaled.in0", scaled0);
        trace?.Invoke("scaled.in1", scaled1);
        var features0 = _net.forward(scaled0);
        var features1 = _net.forward(scaled1);
        trace?.Invoke("net.in0.relu5_3", features0[^1]);
        trace?.Invoke("net.in1.relu5_3", features1[^1]);
        Tensor? total = null;
        for (var k = 0; k < _lins.Length; k++)
        {
            var diff = (NormalizeChannels(features0[k]) - NormalizeChannels(features1[k])).pow(2);
            var lin = _lins[k].forward(diff);
            var contribution = lin.mean([2, 3], keepdim: true);
            trace?.Invoke($"diff.{k}", diff);
            trace?.Invoke($"lin.{k}", lin);
            trace?.Invoke($"contrib.{k}", contribution);
            total = total is null ? contribution : total + contribution;
        }
        return total!.MoveToOuterDisposeScope();
    }

    /// <summary>Loads the reference's own state dict (<c>LPIPS.state_dict()</c> keys) strictly.</summary>
    public void LoadReferenceStateDict(IReadOnlyDictionary<string, Tensor> stateDict, string source) =>
        StateDictLoading.LoadStrict(this, stateDict, source);

    /// <summary>
    /// Loads the weights a user supplies as the reference downloads them: torchvision's <c>vgg16</c> ImageNet state dict
    /// (<c>features.{j}.weight/bias</c>; <c>classifier.*</c> is not used) and the LPIPS <c>vgg.pth</c>
    /// (<c>lin{k}.model.1.weight</c>). The scaling layer keeps its constant buffers.
    /// </summary>
    public void LoadPretrained(string torchvisionVgg16Path, string lpipsLinPath)
    {
        var vgg = CheckpointLoader.LoadStateDict(torchvisionVgg16Path);
        var lin = CheckpointLoader.LoadStateDict(lpipsLinPath);
        try
        {
            var stateDict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (key, value) in vgg)
            {
                if (key.StartsWith("classifier.", StringComparison.Ordinal)) continue;
                stateDict[FromTorchvisionKey(key, torchvisionVgg16Path)] = value;
            }
            for (var k = 0; k < _lins.Length; k++)
            {
                var key = $"lin{k}.model.1.weight";
                stateDict[key] = lin.TryGetValue(key, out var weight) ? weight
                    : throw new InvalidDataException($"{lpipsLinPath}: LPIPS lin weights lack '{key}' (keys: {string.Join(", ", lin.Keys)})");
            }
            foreach (var (key, buffer) in _scaling.named_buffers()) stateDict[$"scaling_layer.{key}"] = buffer;
            StateDictLoading.LoadStrict(this, stateDict, $"{torchvisionVgg16Path} + {lpipsLinPath}");
        }
        finally
        {
            foreach (var tensor in vgg.Values.Concat(lin.Values)) tensor.Dispose();
        }
    }

    /// <summary>torchvision <c>features.{j}.*</c> → <c>net.slice{k}.{j − start}.*</c>.</summary>
    public static string FromTorchvisionKey(string key, string source)
    {
        var parts = key.Split('.');
        if (parts.Length != 3 || parts[0] != "features" || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            throw new InvalidDataException($"{source}: '{key}' is not a torchvision vgg16 key (features.{{j}}.weight/bias or classifier.*)");
        for (var slice = 0; slice < SliceRanges.Count; slice++)
        {
            var (start, end) = SliceRanges[slice];
            if (index >= start && index < end) return $"net.slice{slice + 1}.{index - start}.{parts[2]}";
        }
        throw new InvalidDataException($"{source}: '{key}' lies beyond relu5_3 (features.29), which LPIPS does not use");
    }

    private static Tensor NormalizeChannels(Tensor features)
    {
        using var norm = features.pow(2).sum([1], keepdim: true).sqrt();
        using var denominator = norm + NormalizeEps;
        return features / denominator;
    }

    private sealed class ScalingLayer : nn.Module<Tensor, Tensor>
    {
        private readonly Tensor shift;
        private readonly Tensor scale;

        public ScalingLayer() : base("ScalingLayer")
        {
            shift = tensor(Shift, [1, 3, 1, 1]);
            scale = tensor(Scale, [1, 3, 1, 1]);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var centred = input - shift;
            return centred / scale;
        }
    }

    /// <summary>VGG16 <c>features[0:30]</c> in five <c>slice{k}</c> Sequentials, each numbering its layers from 0.</summary>
    private sealed class Vgg16Slices : nn.Module<Tensor, Tensor[]>
    {
        private static readonly int[] Configuration = [64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512];

        private readonly Sequential[] _slices;

        public Vgg16Slices() : base("vgg16")
        {
            var layers = new List<nn.Module<Tensor, Tensor>>();
            var inChannels = 3L;
            foreach (var channels in Configuration)
            {
                if (channels < 0)
                {
                    layers.Add(nn.MaxPool2d(2, 2));
                    continue;
                }
                layers.Add(nn.Conv2d(inChannels, channels, 3, padding: 1));
                layers.Add(nn.ReLU());
                inChannels = channels;
            }
            _slices = SliceRanges.Select(range => nn.Sequential(Enumerable.Range(range.Start, range.End - range.Start)
                .Select(j => ($"{j - range.Start}", layers[j])).ToArray())).ToArray();
            for (var k = 0; k < _slices.Length; k++) register_module($"slice{k + 1}", _slices[k]);
        }

        /// <summary>The outputs of the five slices (relu1_2 … relu5_3).</summary>
        public override Tensor[] forward(Tensor input)
        {
            var outputs = new Tensor[_slices.Length];
            var x = input;
            for (var k = 0; k < _slices.Length; k++) x = outputs[k] = _slices[k].forward(x);
            return outputs;
        }
    }

    /// <summary><c>lin{k}.model</c> = Sequential(Dropout, Conv2d(C, 1, 1, bias=False)); the dropout is inactive in eval mode.</summary>
    private sealed class LinLayer : nn.Module<Tensor, Tensor>
    {
        private readonly Sequential model;

        public LinLayer(int channels) : base("NetLinLayer")
        {
            model = nn.Sequential(("0", nn.Dropout()), ("1", nn.Conv2d(channels, 1, 1, bias: false)));
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => model.forward(input);
    }
}
