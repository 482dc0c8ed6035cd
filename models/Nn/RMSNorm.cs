using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>RMSNorm: x · rsqrt(mean(x², last dim) + eps) in float32, cast back to the input dtype, times a learned weight.</summary>
public sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly double _eps;
    private readonly Parameter weight;

    public RMSNorm(long dim, double eps = 1e-6, Device? device = null) : base(nameof(RMSNorm))
    {
        _eps = eps;
        weight = new Parameter(ones(dim, device: device));
        RegisterComponents();
    }

    public Parameter Weight => weight;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var asFloat = input.to(float32);
        var normalised = asFloat * (asFloat.pow(2).mean([-1], keepdim: true) + _eps).rsqrt();
        return (normalised.to(input.dtype) * weight).MoveToOuterDisposeScope();
    }
}
