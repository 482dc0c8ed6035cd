using RAE.Models.Stage1.Encoders;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using static RAE.Models.Metrics.InceptionPooling;

namespace RAE.Models.Metrics;

/// <summary>Conv2d (no bias) + BatchNorm2d (eps 0.001, running statistics) + ReLU; keys <c>conv.weight</c>, <c>bn.*</c>.</summary>
public sealed class BasicConv2d : nn.Module<Tensor, Tensor>
{
    public const double BatchNormEpsilon = 0.001;

    private readonly FidConv2d conv;
    private readonly FrozenBatchNorm2d bn;

    public BasicConv2d(string name, long inChannels, long outChannels, (long H, long W) kernel, (long H, long W) stride = default, (long H, long W) padding = default)
        : base(name)
    {
        conv = new FidConv2d("conv", inChannels, outChannels, kernel, stride == default ? (1, 1) : stride, padding);
        bn = new FrozenBatchNorm2d("bn", outChannels, BatchNormEpsilon);
        RegisterComponents();
    }

    public BasicConv2d(string name, long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0)
        : this(name, inChannels, outChannels, (kernel, kernel), (stride, stride), (padding, padding))
    {
    }

    public override Tensor forward(Tensor input)
    {
        using var convolved = conv.forward(input);
        using var normalised = bn.forward(convolved);
        return F.relu(normalised);
    }
}

/// <summary>A bias-free convolution with a (possibly rectangular) kernel and symmetric padding; key <c>weight</c>.</summary>
public sealed class FidConv2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly long[] _stride;
    private readonly long[] _padding;

    public FidConv2d(string name, long inChannels, long outChannels, (long H, long W) kernel, (long H, long W) stride, (long H, long W) padding)
        : base(name)
    {
        weight = new Parameter(zeros(outChannels, inChannels, kernel.H, kernel.W), requires_grad: false);
        _stride = [stride.H, stride.W];
        _padding = [padding.H, padding.W];
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => F.conv2d(input, weight, strides: _stride, padding: _padding);
}

/// <summary>Mixed_5b/5c/5d. The pool branch averages without counting the padding (torchvision counts it).</summary>
public sealed class InceptionA : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool;

    public InceptionA(string name, long inChannels, long poolFeatures) : base(name)
    {
        branch1x1 = new BasicConv2d("branch1x1", inChannels, 64, 1);
        branch5x5_1 = new BasicConv2d("branch5x5_1", inChannels, 48, 1);
        branch5x5_2 = new BasicConv2d("branch5x5_2", 48, 64, 5, padding: 2);
        branch3x3dbl_1 = new BasicConv2d("branch3x3dbl_1", inChannels, 64, 1);
        branch3x3dbl_2 = new BasicConv2d("branch3x3dbl_2", 64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv2d("branch3x3dbl_3", 96, 96, 3, padding: 1);
        branch_pool = new BasicConv2d("branch_pool", inChannels, poolFeatures, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var pooled = AveragePoolExcludingPadding(x);
        return cat([
            branch1x1.forward(x),
            branch5x5_2.forward(branch5x5_1.forward(x)),
            branch3x3dbl_3.forward(branch3x3dbl_2.forward(branch3x3dbl_1.forward(x))),
            branch_pool.forward(pooled),
        ], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Mixed_6a: grid reduction 35 → 17.</summary>
public sealed class InceptionB : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;

    public InceptionB(string name, long inChannels) : base(name)
    {
        branch3x3 = new BasicConv2d("branch3x3", inChannels, 384, 3, stride: 2);
        branch3x3dbl_1 = new BasicConv2d("branch3x3dbl_1", inChannels, 64, 1);
        branch3x3dbl_2 = new BasicConv2d("branch3x3dbl_2", 64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv2d("branch3x3dbl_3", 96, 96, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return cat([
            branch3x3.forward(x),
            branch3x3dbl_3.forward(branch3x3dbl_2.forward(branch3x3dbl_1.forward(x))),
            F.max_pool2d(x, [3, 3], strides: [2, 2]),
        ], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Mixed_6b..6e: factorised 7x7 convolutions; the pool branch averages without counting the padding.</summary>
public sealed class InceptionC : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch1x1, branch7x7_1, branch7x7_2, branch7x7_3;
    private readonly BasicConv2d branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;

    public InceptionC(string name, long inChannels, long channels7x7) : base(name)
    {
        var c7 = channels7x7;
        branch1x1 = new BasicConv2d("branch1x1", inChannels, 192, 1);
        branch7x7_1 = new BasicConv2d("branch7x7_1", inChannels, c7, 1);
        branch7x7_2 = new BasicConv2d("branch7x7_2", c7, c7, (1, 7), padding: (0, 3));
        branch7x7_3 = new BasicConv2d("branch7x7_3", c7, 192, (7, 1), padding: (3, 0));
        branch7x7dbl_1 = new BasicConv2d("branch7x7dbl_1", inChannels, c7, 1);
        branch7x7dbl_2 = new BasicConv2d("branch7x7dbl_2", c7, c7, (7, 1), padding: (3, 0));
        branch7x7dbl_3 = new BasicConv2d("branch7x7dbl_3", c7, c7, (1, 7), padding: (0, 3));
        branch7x7dbl_4 = new BasicConv2d("branch7x7dbl_4", c7, c7, (7, 1), padding: (3, 0));
        branch7x7dbl_5 = new BasicConv2d("branch7x7dbl_5", c7, 192, (1, 7), padding: (0, 3));
        branch_pool = new BasicConv2d("branch_pool", inChannels, 192, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var seven = branch7x7_3.forward(branch7x7_2.forward(branch7x7_1.forward(x)));
        var sevenDouble = branch7x7dbl_5.forward(branch7x7dbl_4.forward(branch7x7dbl_3.forward(branch7x7dbl_2.forward(branch7x7dbl_1.forward(x)))));
        var pooled = AveragePoolExcludingPadding(x);
        return cat([branch1x1.forward(x), seven, sevenDouble, branch_pool.forward(pooled)], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Mixed_7a: grid reduction 17 → 8.</summary>
public sealed class InceptionD : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;

    public InceptionD(string name, long inChannels) : base(name)
    {
        branch3x3_1 = new BasicConv2d("branch3x3_1", inChannels, 192, 1);
        branch3x3_2 = new BasicConv2d("branch3x3_2", 192, 320, 3, stride: 2);
        branch7x7x3_1 = new BasicConv2d("branch7x7x3_1", inChannels, 192, 1);
        branch7x7x3_2 = new BasicConv2d("branch7x7x3_2", 192, 192, (1, 7), padding: (0, 3));
        branch7x7x3_3 = new BasicConv2d("branch7x7x3_3", 192, 192, (7, 1), padding: (3, 0));
        branch7x7x3_4 = new BasicConv2d("branch7x7x3_4", 192, 192, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return cat([
            branch3x3_2.forward(branch3x3_1.forward(x)),
            branch7x7x3_4.forward(branch7x7x3_3.forward(branch7x7x3_2.forward(branch7x7x3_1.forward(x)))),
            F.max_pool2d(x, [3, 3], strides: [2, 2]),
        ], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Mixed_7b (E_1: pool branch averages without counting the padding) and Mixed_7c (E_2: the pool branch takes the
/// maximum, a quirk of the TensorFlow graph that torchvision does not have).
/// </summary>
public sealed class InceptionE : nn.Module<Tensor, Tensor>
{
    private readonly BasicConv2d branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b;
    private readonly BasicConv2d branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;
    private readonly bool _maxPoolBranch;

    public InceptionE(string name, long inChannels, bool maxPoolBranch) : base(name)
    {
        branch1x1 = new BasicConv2d("branch1x1", inChannels, 320, 1);
        branch3x3_1 = new BasicConv2d("branch3x3_1", inChannels, 384, 1);
        branch3x3_2a = new BasicConv2d("branch3x3_2a", 384, 384, (1, 3), padding: (0, 1));
        branch3x3_2b = new BasicConv2d("branch3x3_2b", 384, 384, (3, 1), padding: (1, 0));
        branch3x3dbl_1 = new BasicConv2d("branch3x3dbl_1", inChannels, 448, 1);
        branch3x3dbl_2 = new BasicConv2d("branch3x3dbl_2", 448, 384, 3, padding: 1);
        branch3x3dbl_3a = new BasicConv2d("branch3x3dbl_3a", 384, 384, (1, 3), padding: (0, 1));
        branch3x3dbl_3b = new BasicConv2d("branch3x3dbl_3b", 384, 384, (3, 1), padding: (1, 0));
        branch_pool = new BasicConv2d("branch_pool", inChannels, 192, 1);
        _maxPoolBranch = maxPoolBranch;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var three = branch3x3_1.forward(x);
        var threeDouble = branch3x3dbl_2.forward(branch3x3dbl_1.forward(x));
        var pooled = _maxPoolBranch
            ? F.max_pool2d(x, [3, 3], strides: [1, 1], padding: [1, 1])
            : AveragePoolExcludingPadding(x);
        return cat([
            branch1x1.forward(x),
            cat([branch3x3_2a.forward(three), branch3x3_2b.forward(three)], 1),
            cat([branch3x3dbl_3a.forward(threeDouble), branch3x3dbl_3b.forward(threeDouble)], 1),
            branch_pool.forward(pooled),
        ], 1).MoveToOuterDisposeScope();
    }
}

internal static class InceptionPooling
{
    /// <summary>3x3 average, stride 1, padding 1, dividing by the number of real (unpadded) pixels: count_include_pad=False.</summary>
    public static Tensor AveragePoolExcludingPadding(Tensor x) =>
        F.avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false);
}
