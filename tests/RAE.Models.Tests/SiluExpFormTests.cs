using RAE.Models.Nn;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>
/// <see cref="SiluGate.ExpForm"/> (a·b / (1 + exp(−a)), the sampling path's fp32 SwiGLU activation) against libtorch's
/// silu(a)·b: equal to fp32 rounding across the range, including the saturated tails, zeros and non-finite inputs; and
/// <see cref="SiluGate.Composed"/> takes it only where no gradient is recorded.
/// </summary>
public sealed class SiluExpFormTests
{
    [Fact]
    public void EqualsLibtorchSiluTimesGateToFp32RoundingAcrossTheRange()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(5);
        var spread = randn([64, 512], generator: generator) * 12;
        float[] edges = [0f, -0f, 1e-30f, -1e-30f, 80f, -80f, 88.7f, -88.7f, 89f, -89f, 100f, -100f, 1e4f, -1e4f, 3.4e38f, -3.4e38f];
        var a = cat([spread.flatten(), tensor(edges)]);
        var b = randn(a.shape, generator: generator);
        var expected = nn.functional.silu(a) * b;
        var actual = SiluGate.ExpForm(a, b);
        var error = (actual - expected).abs();
        var allowed = expected.abs() * 4e-7 + 1e-37;
        var worst = (error / allowed).max().item<float>();
        Assert.True(worst <= 1, $"ExpForm differs from silu(a)·b by up to {worst:F2}x the allowed 4e-7 relative");
    }

    [Fact]
    public void PropagatesNonFiniteInputsAsSiluDoes()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new[] { float.NaN, float.PositiveInfinity, 2f, float.NegativeInfinity });
        var b = tensor(new[] { 1f, 1f, float.NaN, 1f });
        var expected = (nn.functional.silu(a) * b).data<float>().ToArray();
        var actual = SiluGate.ExpForm(a, b).data<float>().ToArray();
        for (var i = 0; i < expected.Length; i++)
            Assert.True(expected[i].Equals(actual[i]), $"element {i}: silu gives {expected[i]}, ExpForm {actual[i]}");
    }

    [Fact]
    public void ComposedUsesTheExpFormOnlyWithoutAGradient()
    {
        using var scope = NewDisposeScope();
        var projection = randn(4, 6, 2 * 32, generator: new Generator(9)) * 4;
        var expForm = SiluGate.ExpForm(projection.chunk(2, -1)[0], projection.chunk(2, -1)[1]);
        var siluForm = SiluGate.SiluForm(projection);
        Assert.False(Same(expForm, siluForm), "the two forms must differ somewhere in the last bit for this test to tell them apart");

        using (no_grad()) Assert.True(Same(SiluGate.Composed(projection), expForm), "without autograd Composed takes the exp form");
        Assert.True(Same(SiluGate.Composed(projection), expForm), "a tensor that needs no gradient takes the exp form");

        var leaf = projection.detach().requires_grad_(true);
        var recorded = SiluGate.Composed(leaf);
        Assert.True(Same(recorded.detach(), siluForm), "with a gradient recorded Composed keeps libtorch's silu (and its backward)");
        using (no_grad()) Assert.True(Same(SiluGate.Composed(leaf), expForm), "no_grad on a parameter-like leaf still takes the exp form");

        var bf16 = projection.to(bfloat16);
        using (no_grad()) Assert.True(Same(SiluGate.Composed(bf16), SiluGate.SiluForm(bf16)), "bf16 keeps libtorch's silu");
    }

    private static bool Same(Tensor x, Tensor y) => x.shape.SequenceEqual(y.shape) && x.eq(y).all().item<bool>();
}
