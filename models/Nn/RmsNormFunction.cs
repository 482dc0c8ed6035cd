using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// RMSNorm as one custom autograd node: y = (x·r).to(x.dtype) ⊙ w with r = rsqrt(mean(x², last dim) + eps) in fp32.
/// The forward runs the same ops as the composed expression (bit-identical output); it saves x and the per-row r
/// (the composed graph also keeps the normalised activation), and the backward is the closed form
/// ∂x = r·(g⊙w) − x·r³·mean((g⊙w)⊙x), ∂w = Σ_rows g⊙(x·r), in fp32 (fp64 for fp64 input), cast to x's dtype once.
/// </summary>
public static class RmsNormFunction
{
    public static Tensor Apply(Tensor input, Tensor weight, double eps)
    {
        if (!is_grad_enabled() || !(input.requires_grad || weight.requires_grad)) return Composed(input, weight, eps);
        return Fused(input, weight, eps);
    }

    /// <summary>The custom autograd node, also with autograd off (for tests and the kernel comparison).</summary>
    public static Tensor Fused(Tensor input, Tensor weight, double eps) => RmsNormNode.apply(input, weight, eps);

    /// <summary>The composed expression (the reference RMSNorm, whose autograd graph the fused backward replaces).</summary>
    public static Tensor Composed(Tensor input, Tensor weight, double eps)
    {
        using var scope = NewDisposeScope();
        var asFloat = input.to(float32);
        var normalised = asFloat * InverseRms(asFloat, eps);
        return (normalised.to(input.dtype) * weight).MoveToOuterDisposeScope();
    }

    /// <summary>rsqrt(mean(x², last dim) + eps) of an fp32 <paramref name="asFloat"/>, keeping the last dimension.</summary>
    public static Tensor InverseRms(Tensor asFloat, double eps)
    {
        using var scope = NewDisposeScope();
        return (asFloat.pow(2).mean([-1], keepdim: true) + eps).rsqrt().MoveToOuterDisposeScope();
    }

    /// <summary>Gradients of Σ g ⊙ RMSNorm(x) with respect to x (x's dtype) and w (w's dtype), from x and its saved r.</summary>
    public static (Tensor Input, Tensor Weight) Backward(Tensor input, Tensor weight, Tensor inverseRms, Tensor gradient)
    {
        using var scope = NewDisposeScope();
        var math = input.dtype == float64 ? float64 : float32;
        var x = input.to(math);
        var g = gradient.to(math);
        var normalised = (x * inverseRms).to(input.dtype);
        var leading = Enumerable.Range(0, (int)g.dim() - 1).Select(d => (long)d).ToArray();
        var gradWeight = (g * normalised).sum(leading).to(weight.dtype);
        var gradNormalised = g * weight.to(math);
        var rowScale = (gradNormalised * x).mean([-1], keepdim: true).mul_(inverseRms.pow(3));
        var gradInput = gradNormalised.mul_(inverseRms);
        gradInput.addcmul_(x, rowScale, value: -1);
        return (gradInput.to(input.dtype).MoveToOuterDisposeScope(), gradWeight.MoveToOuterDisposeScope());
    }

    private sealed class RmsNormNode : autograd.SingleTensorFunction<RmsNormNode>
    {
        public override string Name => nameof(RmsNormNode);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            using var scope = NewDisposeScope();
            var input = (Tensor)vars[0];
            var weight = (Tensor)vars[1];
            var asFloat = input.to(float32);
            // Saved tensors are registered after forward returns: r must outlive this scope (the node keeps its own reference).
            var inverseRms = InverseRms(asFloat, (double)vars[2]).MoveToOuterDisposeScope();
            ctx.save_for_backward([input, weight, inverseRms]);
            return ((asFloat * inverseRms).to(input.dtype) * weight).MoveToOuterDisposeScope();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            CustomGradients.ReleasePrevious();
            using var scope = NewDisposeScope();
            var saved = ctx.get_saved_variables();
            var (gradInput, gradWeight) = Backward(saved[0], saved[1], saved[2], grad_output);
            grad_output.Dispose();
            return CustomGradients.Return(gradInput, gradWeight, null);
        }
    }
}
