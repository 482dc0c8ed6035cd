using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// SwiGLU's activation: SiLU(first half of the last dimension) ⊙ second half, for the w12 projection [.., 2·hidden].
/// The model uses <see cref="Composed"/>. <see cref="Fused"/> is the same forward as one custom autograd node that saves
/// only the projection and whose backward converts once to fp32 (fp64 stays fp64), evaluates
/// ∂/∂a = g·b·σ(a)·(1 + a·(1 − σ(a))), ∂/∂b = g·SiLU(a) there and rounds once. It was written because a bf16 step
/// profile had shown the composed bf16 backward at 2.4x the fp32 one, but measured alone at the head's shape
/// (`rae bench model --compare-kernels`) the composed bf16 graph is as fast as fp32's and the node is about 2x slower
/// in both precisions (its ten elementwise passes and per-node overhead against libtorch's fused silu_backward), so
/// it is kept for that comparison only.
/// </summary>
public static class SiluGate
{
    /// <summary>
    /// SiLU(first half) ⊙ second half of <paramref name="projection"/>'s last dimension, as composed autograd ops. An fp32
    /// projection that needs no gradient (sampling) takes <see cref="ExpForm"/>; everything else libtorch's silu.
    /// </summary>
    public static Tensor Composed(Tensor projection)
    {
        if (projection.dtype != float32 || (projection.requires_grad && is_grad_enabled())) return SiluForm(projection);
        using var scope = NewDisposeScope();
        var halves = projection.chunk(2, -1);
        return ExpForm(halves[0], halves[1]).MoveToOuterDisposeScope();
    }

    /// <summary>libtorch's silu of the first half times the second, whatever the dtype and gradient mode.</summary>
    public static Tensor SiluForm(Tensor projection)
    {
        using var scope = NewDisposeScope();
        var halves = projection.chunk(2, -1);
        return (nn.functional.silu(halves[0]) * halves[1]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// a·b / (1 + exp(−a)), which is SiLU(a)·b, in four passes (the exp in place). libtorch's fp32 exp runs on MKL's
    /// vector math; its silu on SLEEF's vectorised exp, which on the AVX-512 development machine had phases, lasting
    /// whole processes, where it ran 10-25x slower (a DiT^DH-S sampling forward pass at batch 8 spent 280-450 ms in its
    /// SwiGLU activations instead of ~22 ms) while MKL's exp did not slow down. Measured in one process per row,
    /// alternating per pass: this form ~30 ms per forward pass in the fast phase (silu ~22) and at most ~110 ms in the slow
    /// one; forward pass medians 2.28 / 2.32 / 2.39 s against 2.49 / 2.34 / 2.64 s (see README, Benchmarks).
    /// </summary>
    public static Tensor ExpForm(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var denominator = a.neg().exp_().add_(1);
        return a.mul(b).div_(denominator).MoveToOuterDisposeScope();
    }

    /// <summary>The custom autograd node (any floating dtype).</summary>
    public static Tensor Fused(Tensor projection) => SiluGateFunction.apply(projection);

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
            return SiluForm(projection);
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
