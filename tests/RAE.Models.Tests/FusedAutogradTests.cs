using RAE.Models.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>
/// The fused custom autograd nodes (<see cref="SiluGate"/>, <see cref="RmsNormFunction"/>) against the composed graphs they
/// replace: same forward, gradients equal to fp32 rounding (fp32), within one bf16 rounding of the exact gradient (bf16),
/// and the closed-form backward against central finite differences in float64.
/// </summary>
public sealed class FusedAutogradTests
{
    /// <summary>One bf16 rounding is a relative error of at most 2^-9; allow 2^-8 for the fp32 arithmetic before it.</summary>
    private const double OneBf16Rounding = 1.0 / 256;

    [Fact]
    public void SiluGateFp32MatchesTheComposedGraph()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var projection = randn(3, 7, 2 * 40) * 3;
        var upstream = randn(3, 7, 40);
        var (composed, composedGrad) = ForwardBackward(projection, upstream, SiluGate.Composed);
        var (fused, fusedGrad) = ForwardBackward(projection, upstream, SiluGate.Fused);
        Assert.True(Same(fused, composed), "the fused forward runs the composed kernels and must be bit-identical");
        AssertClose(composedGrad, fusedGrad, 1e-5, 1e-6, "fp32 gradient");
    }

    [Fact]
    public void SiluGateBf16IsWithinOneRoundingOfTheExactGradient()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var projection = (randn(2, 16, 2 * 96) * 3).to(bfloat16);
        var upstream = randn(2, 16, 96).to(bfloat16);
        var (composed, composedGrad) = ForwardBackward(projection, upstream, SiluGate.Composed);
        var (fused, fusedGrad) = ForwardBackward(projection, upstream, SiluGate.Fused);
        Assert.Equal(ScalarType.BFloat16, fusedGrad.dtype);
        Assert.True(Same(fused, composed), "bf16 forward must be bit-identical to the composed expression");
        var (_, exact) = ForwardBackward(projection.to(float64), upstream.to(float64), SiluGate.Composed);
        AssertClose(exact, fusedGrad.to(float64), OneBf16Rounding, 1e-6, "fused bf16 gradient vs exact");
        // The composed bf16 graph rounds g·b and SiLU(a) to bf16 before its last product: a few roundings from exact.
        AssertClose(composedGrad.to(float64), fusedGrad.to(float64), 4 * OneBf16Rounding, 1e-3, "fused vs composed bf16 gradient");
    }

    [Fact]
    public void SiluGateBackwardMatchesFiniteDifferencesInFloat64()
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        var projection = randn(2, 3, 8, dtype: float64) * 2;
        var upstream = randn(2, 3, 4, dtype: float64);
        var (_, analytic) = ForwardBackward(projection, upstream, SiluGate.Fused);
        var numeric = FiniteDifferenceGradient(projection, p => (SiluGate.Composed(p) * upstream).sum());
        AssertClose(numeric, analytic, 1e-7, 1e-9, "float64 gradient check");
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void RmsNormForwardIsBitIdenticalAndGradientsMatch(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        manual_seed(14);
        var input = (randn(3, 5, 64) * 2 + 0.5).to(dtype);
        var weight = 1 + 0.2 * randn(64);
        var upstream = randn(3, 5, 64);
        var (composed, composedInput, composedWeight) = RmsNormForwardBackward(input, weight, upstream, RmsNormFunction.Composed);
        var (fused, fusedInput, fusedWeight) = RmsNormForwardBackward(input, weight, upstream, RmsNormFunction.Fused);
        Assert.True(Same(fused, composed), "the fused forward runs the composed ops and must be bit-identical");
        Assert.Equal(dtype, fusedInput.dtype);
        Assert.Equal(ScalarType.Float32, fusedWeight.dtype);
        // fp32: equal to rounding. bf16: the composed graph rounds g⊙w to bf16 on its way back, the fused one does not.
        var relative = dtype == ScalarType.Float32 ? 1e-5 : 2 * OneBf16Rounding;
        var absolute = dtype == ScalarType.Float32 ? 1e-6 : 1e-3;
        AssertClose(composedInput.to(float64), fusedInput.to(float64), relative, absolute, "input gradient");
        AssertClose(composedWeight, fusedWeight, 1e-5, 1e-5, "weight gradient");
    }

    [Fact]
    public void RmsNormBackwardMatchesFiniteDifferencesInFloat64()
    {
        using var scope = NewDisposeScope();
        manual_seed(15);
        const double eps = 1e-6;
        var input = randn(2, 3, 6, dtype: float64);
        var weight = 1 + 0.3 * randn(6, dtype: float64);
        var upstream = randn(2, 3, 6, dtype: float64);
        Tensor Exact(Tensor x, Tensor w) => x * (x.pow(2).mean([-1], keepdim: true) + eps).rsqrt() * w;
        var inverseRms = (input.pow(2).mean([-1], keepdim: true) + eps).rsqrt();
        var (gradInput, gradWeight) = RmsNormFunction.Backward(input, weight, inverseRms, upstream);
        AssertClose(FiniteDifferenceGradient(input, x => (Exact(x, weight) * upstream).sum()), gradInput, 1e-7, 1e-9, "input gradient check");
        AssertClose(FiniteDifferenceGradient(weight, w => (Exact(input, w) * upstream).sum()), gradWeight, 1e-7, 1e-9, "weight gradient check");
    }

    [Fact]
    public void RmsNormModuleKeepsItsReferenceOutputInBothPaths()
    {
        using var scope = NewDisposeScope();
        manual_seed(16);
        var norm = new RMSNorm(32);
        using (no_grad()) norm.Weight.uniform_(0.5, 1.5);
        var input = randn(4, 32);
        var withGrad = norm.forward(input.requires_grad_(true));
        withGrad.backward([ones_like(withGrad)]);
        Assert.NotNull(norm.Weight.grad);
        Tensor withoutGrad;
        using (no_grad()) withoutGrad = norm.forward(input);
        Assert.True(Same(withGrad, withoutGrad));
        Assert.True(Same(withGrad, RmsNormFunction.Composed(input, norm.Weight, 1e-6)));
    }

    private static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.equal(b).all().item<bool>();

    private static (Tensor Output, Tensor Gradient) ForwardBackward(Tensor source, Tensor upstream, Func<Tensor, Tensor> path)
    {
        var leaf = source.detach().requires_grad_(true);
        var output = path(leaf);
        output.backward([upstream]);
        return (output.detach(), leaf.grad!.clone());
    }

    private static (Tensor Output, Tensor GradInput, Tensor GradWeight) RmsNormForwardBackward(Tensor input, Tensor weight, Tensor upstream,
        Func<Tensor, Tensor, double, Tensor> path)
    {
        var inputLeaf = input.detach().requires_grad_(true);
        var weightLeaf = weight.detach().requires_grad_(true);
        var output = path(inputLeaf, weightLeaf, 1e-6);
        output.backward([upstream.to(output.dtype)]);
        return (output.detach(), inputLeaf.grad!.clone(), weightLeaf.grad!.clone());
    }

    private static Tensor FiniteDifferenceGradient(Tensor point, Func<Tensor, Tensor> scalar)
    {
        const double step = 1e-6;
        using var guard = no_grad();
        var flat = point.detach().clone().flatten();
        var gradient = zeros_like(flat);
        for (var i = 0; i < flat.shape[0]; i++)
        {
            var original = flat[i].item<double>();
            flat[i] = original + step;
            var above = scalar(flat.view(point.shape)).item<double>();
            flat[i] = original - step;
            var below = scalar(flat.view(point.shape)).item<double>();
            flat[i] = original;
            gradient[i] = (above - below) / (2 * step);
        }
        return gradient.view(point.shape);
    }

    private static void AssertClose(Tensor expected, Tensor actual, double relative, double absolute, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var excess = ((actual - expected).abs() - (expected.abs() * relative + absolute)).max().to(float64).item<double>();
        Assert.True(excess <= 0, $"{what}: max |difference| exceeds rtol {relative} atol {absolute} by {excess:G3}");
    }
}
