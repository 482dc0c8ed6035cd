using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// SwiGLU's activation: SiLU(first half of the last dimension) ⊙ second half, for the w12 projection [.., 2·hidden].
/// In fp32 (and with autograd off) it is the composed expression. With a bf16 projection under autograd it runs as one
/// custom autograd node: the forward is the composed expression (same kernels, same bf16 roundings), and it saves only
/// the projection (the composed graph also keeps SiLU's output); the backward converts once to fp32 (fp64 stays fp64) and evaluates
/// ∂/∂a = g·b·σ(a)·(1 + a·(1 − σ(a))), ∂/∂b = g·SiLU(a) there, and rounds the result to bf16 once. libtorch's bf16
/// backward kernels for SiLU and mul are about 2.4x slower than the fp32 ones on this CPU; the fused form also skips the
/// composed graph's bf16 roundings of the intermediate g·b and SiLU(a), so it is the more accurate of the two.
/// </summary>
public static class SiluGate
{
    /// <summary>SiLU(first half) ⊙ second half of <paramref name="projection"/>'s last dimension.</summary>
    public static Tensor Apply(Tensor projection)
    {
        if (projection.dtype != ScalarType.BFloat16 || !is_grad_enabled() || !projection.requires_grad) return Composed(projection);
        return Fused(projection);
    }

    /// <summary>The custom autograd node in any dtype (fp32 too: for tests and the kernel comparison).</summary>
    public static Tensor Fused(Tensor projection) => SiluGateFunction.apply(projection);

    /// <summary>The composed expression, whose autograd graph is the reference of the fused backward.</summary>
    public static Tensor Composed(Tensor projection)
    {
        using var scope = NewDisposeScope();
        var halves = projection.chunk(2, -1);
        return (nn.functional.silu(halves[0]) * halves[1]).MoveToOuterDisposeScope();
    }

    /// <summary>The fused form of the backward: the gradient of Σ g ⊙ SiLU(a) ⊙ b with respect to [a, b], in the projection's dtype.</summary>
    public static Tensor Backward(Tensor projection, Tensor gradient)
    {
        using var scope = NewDisposeScope();
        var math = projection.dtype == float64 ? float64 : float32;
        var halves = projection.to(math).chunk(2, -1);
        var a = halves[0];
        var b = halves[1];
        var g = gradient.to(math);
        var sigmoid = a.sigmoid();
        var gradSigmoid = g * sigmoid;
        var gradB = gradSigmoid * a;
        // ∂/∂a = g·b·σ·(1 + a·(1 − σ)) = b·(g·σ + gradB − gradB·σ), with gradB = g·σ·a: three passes on top of gradB.
        var gradA = gradSigmoid.add_(gradB).addcmul_(gradB, sigmoid, value: -1).mul_(b);
        return cat([gradA, gradB], -1).to(projection.dtype).MoveToOuterDisposeScope();
    }

    private sealed class SiluGateFunction : autograd.SingleTensorFunction<SiluGateFunction>
    {
        public override string Name => nameof(SiluGateFunction);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var projection = (Tensor)vars[0];
            ctx.save_for_backward([projection]);
            return Composed(projection);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            CustomGradients.ReleasePrevious();
            using var scope = NewDisposeScope();
            var projection = ctx.get_saved_variables()[0];
            var gradient = Backward(projection, grad_output);
            grad_output.Dispose();
            return CustomGradients.Return(gradient);
        }
    }
}
