using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// The head convolution when spectral norm is off (<c>using_spec_norm: false</c>): Conv1d with padding k/2, circular
/// when asked, keys <c>weight</c> [out,in,k] and <c>bias</c>.
/// </summary>
public sealed class CircularConv1d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long _padding;
    private readonly bool _circular;

    public CircularConv1d(long inChannels, long outChannels, long kernelSize, bool circularPadding, Generator? generator = null)
        : base(nameof(CircularConv1d))
    {
        if (inChannels <= 0 || outChannels <= 0 || kernelSize <= 0)
            throw new ArgumentException($"conv1d needs positive sizes, got in {inChannels}, out {outChannels}, kernel {kernelSize}");
        _padding = kernelSize / 2;
        _circular = circularPadding;
        var bound = 1.0 / Math.Sqrt(inChannels * kernelSize);
        weight = new Parameter(empty(outChannels, inChannels, kernelSize).uniform_(-bound, bound, generator));
        bias = new Parameter(empty(outChannels).uniform_(-bound, bound, generator));
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
    }

    public override Tensor forward(Tensor input)
    {
        if (!_circular || _padding == 0) return F.conv1d(input, weight, bias, padding: _padding);
        using var padded = F.pad(input, [_padding, _padding], PaddingModes.Circular);
        return F.conv1d(padded, weight, bias);
    }
}
