using RAE.Models.Stage1.Losses;
using RAE.Models.Verification;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1.Losses;

public sealed class DiffAugTests
{
    private static readonly string[] Variants =
    [
        "p1_cut0.2", "p1_cut0", "p1_cut0.2_extremes", "p0.5_trans_only", "p0.5_color_only", "p0.5_cut_only", "p0.5_gate_edges",
        "pneg1_cut0.2", "p0", "p1_cut0.2_20x12",
    ];

    [Fact]
    public void DiffAugCaseMatchesEveryVariantWithinTheCaseAbsoluteBound()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("diffaug"));
        Stage1LossAssertions.AssertAllPass(results, Variants.Select(v => $"{v}.out").ToArray());
        Assert.Equal(Variants.Length, results.Count);
        foreach (var result in results) Assert.True(result.MaxAbsoluteError <= 1e-6, $"{result.Name}: max abs {result.MaxAbsoluteError:g3}");
    }

    [Fact]
    public void ExtremeDrawsShiftByTheFullRangeAndZeroFillTheBorder()
    {
        using var x = arange(1, 65, dtype: float32).reshape(1, 1, 8, 8);
        // d = round(8·0.125) = 1: U = 0 shifts by −1, so out[i,j] = x[i−1, j−1] and the first row and column are zero.
        using var draws0 = tensor(new[] { 0f, 1f, 1f });
        using var draws1 = zeros(7, 1, 1, 1);
        var draws = new RecordedUniformDraws([draws0, draws1]);
        using var output = new DiffAug(0.5, 0.0).Apply(x, draws);
        Assert.Equal(2, draws.Used);
        Assert.Equal(0f, output[0, 0, 0].abs().sum().item<float>());
        Assert.Equal(0f, output[0, 0, TensorIndex.Colon, 0].abs().sum().item<float>());
        Assert.Equal(x[0, 0, 0, 0].item<float>(), output[0, 0, 1, 1].item<float>());
        Assert.Equal(x[0, 0, 6, 6].item<float>(), output[0, 0, 7, 7].item<float>());
    }

    [Fact]
    public void GradientsFlowThroughTranslationAndColour()
    {
        using var x = rand(2, 3, 8, 8).requires_grad_(true);
        var draws = new GeneratorUniformDraws(new Generator(11));
        using var output = new DiffAug(1.0, 0.0).Apply(x, draws);
        using var loss = output.square().sum();
        loss.backward();
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void ZeroProbabilityDrawsNothingAndReturnsTheInput()
    {
        using var x = rand(2, 3, 8, 8);
        var draws = new RecordedUniformDraws([]);
        using var output = new DiffAug(0.0, 0.2).Apply(x, draws);
        Assert.Equal(0, draws.Used);
        Assert.True(output.allclose(x, rtol: 0, atol: 0));
    }

    [Fact]
    public void ADrawOfTheWrongShapeIsNamed()
    {
        using var x = rand(2, 3, 8, 8);
        using var gates = tensor(new[] { 0f, 0f, 0f });
        using var wrong = zeros(7, 3, 1, 1);
        var error = Assert.Throws<InvalidDataException>(() => new DiffAug(1.0, 0.2).Apply(x, new RecordedUniformDraws([gates, wrong])));
        Assert.Contains("[7,2,1,1]", error.Message);
    }

    [Fact]
    public void InvalidSettingsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DiffAug(1.0, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DiffAug(double.NaN, 0.0));
    }
}
