using RAE.Models.Stage1.Encoders;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1;

/// <summary>
/// The DINOv2 position table is resized with PyTorch's antialiased bicubic (F.interpolate antialias=True). The oracle
/// here is a direct separable implementation of PyTorch's/PIL's antialias kernel (cubic a = −0.5, support 2·scale).
/// </summary>
public sealed class PositionTableResizeTests
{
    [Theory]
    [InlineData(8, 5)]
    [InlineData(37, 16)]
    [InlineData(6, 9)]
    public void AntialiasedBicubicMatchesTheSeparableKernel(int inputSide, int outputSide)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(11);
        var table = randn([1, inputSide * inputSide, 3], generator: generator);

        var resized = HfEncoderSupport.ResizePatchTable(table, outputSide, outputSide, antialias: true);

        var expected = ResizeSeparable(table[0].reshape(inputSide, inputSide, 3).to(float64), inputSide, outputSide);
        var error = (resized[0].reshape(outputSide, outputSide, 3).to(float64) - expected).abs().max().item<double>();
        Assert.True(error < 1e-5, $"max error {error}");
    }

    [Fact]
    public void AntialiasChangesADownsampledTable()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(12);
        var table = randn([1, 64, 4], generator: generator);
        var smooth = HfEncoderSupport.ResizePatchTable(table, 3, 3, antialias: true);
        var sharp = HfEncoderSupport.ResizePatchTable(table, 3, 3, antialias: false);
        Assert.False(smooth.allclose(sharp, 1e-3, 1e-3));
    }

    private static Tensor ResizeSeparable(Tensor grid, int inputSide, int outputSide)
    {
        var weights = tensor(Weights(inputSide, outputSide), [outputSide, inputSide], float64);
        // rows: out[i, x, c] = Σ_k W[i,k] grid[k, x, c]; columns likewise.
        var rows = einsum("ik,kxc->ixc", weights, grid);
        return einsum("jk,ikc->ijc", weights, rows);
    }

    private static double[] Weights(int inputSize, int outputSize)
    {
        const double a = -0.5;
        static double Cubic(double x, double a)
        {
            x = Math.Abs(x);
            if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
            if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
            return 0;
        }
        var scale = inputSize / (double)outputSize;
        var support = scale >= 1 ? 2 * scale : 2.0;
        var invScale = scale >= 1 ? 1 / scale : 1.0;
        var result = new double[outputSize * inputSize];
        for (var i = 0; i < outputSize; i++)
        {
            var center = scale * (i + 0.5);
            var min = Math.Max((long)(center - support + 0.5), 0);
            var max = Math.Min((long)(center + support + 0.5), inputSize);
            var total = 0.0;
            for (var j = min; j < max; j++) total += Cubic((j - center + 0.5) * invScale, a);
            for (var j = min; j < max; j++) result[i * inputSize + j] = Cubic((j - center + 0.5) * invScale, a) / total;
        }
        return result;
    }
}
