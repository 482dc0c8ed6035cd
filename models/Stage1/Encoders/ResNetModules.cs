using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Stage1.Encoders;

/// <summary>
/// A bias-free Conv2d with ONNX padding (top, left, bottom, right). The CNTK-exported ResNet pads strided convolutions
/// asymmetrically (for example [3, 3, 2, 2] on the 7x7 stem), so uneven padding is applied explicitly before the conv.
/// </summary>
public sealed class PaddedConv2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly long _stride;
    private readonly long[] _pads;

    public PaddedConv2d(string name, ConvSpec spec) : base(name)
    {
        weight = new Parameter(zeros(spec.OutChannels, spec.InChannels, spec.Kernel, spec.Kernel), requires_grad: false);
        _stride = spec.Stride;
        _pads = spec.Pads;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var (top, left, bottom, right) = (_pads[0], _pads[1], _pads[2], _pads[3]);
        if (top == bottom && left == right)
            return F.conv2d(input, weight, strides: [_stride, _stride], padding: [top, left]);
        using var padded = F.pad(input, [left, right, top, bottom]);
        return F.conv2d(padded, weight, strides: [_stride, _stride]);
    }
}

/// <summary>Inference-only BatchNorm2d (running statistics, no updates); keys match torch: weight, bias, running_*.</summary>
public sealed class FrozenBatchNorm2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly Tensor running_mean;
    private readonly Tensor running_var;
    private readonly double _epsilon;

    public FrozenBatchNorm2d(string name, long channels, double epsilon) : base(name)
    {
        weight = new Parameter(ones(channels), requires_grad: false);
        bias = new Parameter(zeros(channels), requires_grad: false);
        running_mean = zeros(channels);
        running_var = ones(channels);
        _epsilon = epsilon;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) =>
        F.batch_norm(input, running_mean, running_var, weight, bias, training: false, eps: _epsilon);
}

/// <summary>conv-bn-relu-conv-bn plus shortcut (identity or 1x1 conv-bn), then relu; torchvision BasicBlock names.</summary>
public sealed class BasicBlock : nn.Module<Tensor, Tensor>
{
    private readonly PaddedConv2d conv1;
    private readonly FrozenBatchNorm2d bn1;
    private readonly PaddedConv2d conv2;
    private readonly FrozenBatchNorm2d bn2;
    private readonly Sequential? downsample;

    public BasicBlock(string name, BasicBlockSpec spec) : base(name)
    {
        conv1 = new PaddedConv2d("conv1", spec.Conv1);
        bn1 = new FrozenBatchNorm2d("bn1", spec.Conv1.OutChannels, spec.Bn1.Epsilon);
        conv2 = new PaddedConv2d("conv2", spec.Conv2);
        bn2 = new FrozenBatchNorm2d("bn2", spec.Conv2.OutChannels, spec.Bn2.Epsilon);
        if (spec.Downsample is var (projection, projectionBn))
        {
            downsample = nn.Sequential(
                ("0", new PaddedConv2d("0", projection)),
                ("1", new FrozenBatchNorm2d("1", projection.OutChannels, projectionBn.Epsilon)));
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var main = bn2.call(conv2.call(F.relu(bn1.call(conv1.call(input)))));
        var shortcut = downsample is null ? input : downsample.call(input);
        return F.relu(main.add_(shortcut)).MoveToOuterDisposeScope();
    }
}
