using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// RMSNorm: x · rsqrt(mean(x², last dim) + eps) in float32, cast back to the input dtype, times a learned weight; under
/// autograd as the fused node <see cref="RmsNormFunction"/> (same forward, closed-form backward, less saved).
/// </summary>
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

    public override Tensor forward(Tensor input) => RmsNormFunction.Apply(input, weight, _eps);
}
