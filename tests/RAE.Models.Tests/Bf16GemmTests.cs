using RAE.Configuration;
using RAE.Models.Nn;
using RAE.Models.Runtime;
using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class Bf16GemmTests
{
    private static DiTwDDTHeadOptions Tiny => MixedPrecisionTests.Tiny;

    [Theory]
    [InlineData(null, true, false, Bf16GemmMode.Emulated)]
    [InlineData("auto", true, false, Bf16GemmMode.Emulated)]
    [InlineData(null, true, true, Bf16GemmMode.Native)]
    [InlineData(null, false, false, Bf16GemmMode.Native)]
    [InlineData("native", true, false, Bf16GemmMode.Native)]
    [InlineData(" Emulated ", true, true, Bf16GemmMode.Emulated)]
    public void TheModeFollowsTheCpuUnlessOverridden(string? value, bool isX64, bool hasAvx512Core, Bf16GemmMode expected)
    {
        var choice = Bf16Gemm.Resolve(value, isX64, hasAvx512Core);
        Assert.Equal(expected, choice.Mode);
        Assert.Contains(expected == Bf16GemmMode.Native ? "libtorch's bf16 kernels" : "emulated on the fp32 kernels", choice.Description);
    }

    [Fact]
    public void AnUnknownOverrideIsRefusedByName()
    {
        var error = Assert.Throws<RuntimeSettingException>(() => Bf16Gemm.Resolve("fast", true, false));
        Assert.Contains("RAE_BF16_GEMM='fast'", error.Message);
        Assert.Equal(Bf16Gemm.OverrideVariable, error.Variable);
    }

    /// <summary>
    /// Either mode gives the bf16 GEMM's numerics: bf16 operands, exact products, a wide accumulator, one rounding of the
    /// result to bf16. Compared with that computed in float64, each output is within one bf16 step (2⁻⁷ relative:
    /// fp32 accumulation error plus one round-to-nearest).
    /// </summary>
    [Theory]
    [InlineData(Bf16GemmMode.Emulated)]
    [InlineData(Bf16GemmMode.Native)]
    public void ALinearInEitherModeIsTheRoundedBf16Product(Bf16GemmMode mode)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(11, CPU);
        using var layer = nn.Linear(96, 40);
        var input = randn([6, 96], generator: generator);
        Tensor output;
        using (Bf16Gemm.Use(mode))
        using (Autocast.Enter(ComputePrecision.BFloat16))
        {
            output = Autocast.Linear(layer, input);
        }
        Assert.Equal(ScalarType.BFloat16, output.dtype);
        static Tensor Rounded(Tensor t) => t.to(ScalarType.BFloat16).to(ScalarType.Float64);
        var expected = nn.functional.linear(Rounded(input), Rounded(layer.weight!), Rounded(layer.bias!));
        var error = (output.to(ScalarType.Float64) - expected).abs();
        var bound = expected.abs() * Math.Pow(2, -7) + 1e-6;
        Assert.True((error <= bound).all().item<bool>(), $"{mode}: largest error {error.max().item<double>():E3} beyond one bf16 step");
        Assert.False(output.to(ScalarType.Float32).equal(layer.forward(input)).all().item<bool>(), $"{mode}: the fp32 result came back, not a bf16 one");
    }

    [Fact]
    public void EmulatedAndNativeTrainingStepsGiveTheSameGradientsToBf16Precision()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(5, CPU);
        var x = randn([2, 8, 4, 4], generator: generator);
        var t = rand([2], generator: generator);
        var y = tensor(new long[] { 2, 9 });
        var target = randn([2, 8, 4, 4], generator: generator);

        Tensor[] Gradients(ComputePrecision precision, Bf16GemmMode mode)
        {
            using var model = new DiTwDDTHead(Tiny, new Generator(3, CPU));
            foreach (var parameter in model.parameters())
            {
                using var noGrad = no_grad();
                parameter.add_(randn(parameter.shape, generator: new Generator((ulong)parameter.numel(), CPU)) * 0.02);
            }
            using (Bf16Gemm.Use(mode))
            using (Autocast.Enter(precision))
            {
                using var loss = (model.forward(x, t, y).to(ScalarType.Float32) - target).pow(2).mean();
                loss.backward();
            }
            // Parameters no path of this loss reaches (none in fp32 either) have no gradient.
            return model.parameters().Where(parameter => parameter.grad is not null).Select(parameter =>
            {
                Assert.Equal(ScalarType.Float32, parameter.grad!.dtype);
                return parameter.grad!.flatten().detach().clone();
            }).ToArray();
        }

        var reference = cat(Gradients(ComputePrecision.Float32, Bf16GemmMode.Native), 0);
        var native = cat(Gradients(ComputePrecision.BFloat16, Bf16GemmMode.Native), 0);
        var emulated = cat(Gradients(ComputePrecision.BFloat16, Bf16GemmMode.Emulated), 0);
        double Distance(Tensor a, Tensor b) => ((a - b).norm() / b.norm()).item<float>();
        var emulatedToNative = Distance(emulated, native);
        var nativeToFp32 = Distance(native, reference);
        var emulatedToFp32 = Distance(emulated, reference);
        Assert.True(nativeToFp32 > 0 && emulatedToFp32 > 0, "a bf16 step gave the fp32 gradients bit for bit");
        Assert.True(emulatedToNative < 0.02, $"emulated vs native bf16 gradients differ by {emulatedToNative:P3}");
        Assert.True(emulatedToFp32 < 2 * nativeToFp32 + 1e-3,
            $"emulated bf16 is {emulatedToFp32:P3} from fp32, native bf16 {nativeToFp32:P3}: emulation lost precision");
    }

    [Fact]
    public void EmulatedAttentionTakesAndGivesBf16()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(8, CPU);
        var (q, k, v) = (randn([1, 2, 5, 8], generator: generator), randn([1, 2, 5, 8], generator: generator), randn([1, 2, 5, 8], generator: generator));
        var expected = nn.functional.scaled_dot_product_attention(
            q.to(ScalarType.BFloat16).to(ScalarType.Float32), k.to(ScalarType.BFloat16).to(ScalarType.Float32), v.to(ScalarType.BFloat16).to(ScalarType.Float32));
        using (Bf16Gemm.Use(Bf16GemmMode.Emulated))
        {
            var output = Autocast.Attention(q.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), v.to(ScalarType.BFloat16));
            Assert.Equal(ScalarType.BFloat16, output.dtype);
            Assert.True(output.to(ScalarType.Float32).equal(expected.to(ScalarType.BFloat16).to(ScalarType.Float32)).all().item<bool>());
        }
    }
}
