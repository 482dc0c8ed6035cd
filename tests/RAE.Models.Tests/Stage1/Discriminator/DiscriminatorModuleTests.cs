using RAE.Models.Stage1.Losses;
using RAE.Models.Stage1.Discriminator;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Tests.Stage1.Discriminator;

/// <summary>Spectral norm's power iteration, circular padding, BatchNormLocal and the discriminator losses.</summary>
public sealed class DiscriminatorModuleTests
{
    private static Tensor Normalized(Tensor vector) => vector / vector.norm().clamp_min(1e-12);

    [Fact]
    public void TrainModeRunsOnePowerIterationAndEvalModeNone()
    {
        using var generator = new Generator(7);
        using var conv = new SpectralNormConv1d(6, 5, 3, circularPadding: true, generator);
        using var input = randn(new long[] { 2, 6, 10 }, generator: generator);
        using var matrix = conv.WeightOrig.detach().reshape(5, -1);
        using var u0 = conv.U.clone();

        conv.eval();
        using (var _ = conv.forward(input)) { }
        Assert.True(conv.U.equal(u0).all().item<bool>(), "eval mode must not move u");

        conv.train();
        using var expectedV = Normalized(matrix.t().mv(u0));
        using var expectedU = Normalized(matrix.mv(expectedV));
        using var output = conv.forward(input);
        Assert.True(conv.V.allclose(expectedV, rtol: 1e-6, atol: 1e-7));
        Assert.True(conv.U.allclose(expectedU, rtol: 1e-6, atol: 1e-7));

        using var sigma = expectedU.dot(matrix.mv(expectedV));
        using var padded = F.pad(input, [1, 1], TorchSharp.PaddingModes.Circular);
        using var expectedOutput = F.conv1d(padded, conv.WeightOrig.detach() / sigma, conv.parameters().Last().detach());
        Assert.True(output.allclose(expectedOutput, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void SigmaConvergesToTheLargestSingularValueAndTwoTrainPassesStillBackpropagate()
    {
        using var generator = new Generator(8);
        using var conv = new SpectralNormConv1d(4, 6, 3, circularPadding: true, generator);
        conv.train();
        using var input = randn(new long[] { 1, 4, 8 }, generator: generator);
        using var first = conv.forward(input);
        using var second = conv.forward(input);
        using var loss = first.sum() + second.sum();
        loss.backward();
        Assert.NotNull(conv.WeightOrig.grad);

        for (var i = 0; i < 200; i++)
            using (var _ = conv.forward(input)) { }
        using var singular = linalg.svdvals(conv.WeightOrig.detach().reshape(6, -1));
        using var sigma = conv.Sigma();
        Assert.Equal(singular[0].item<float>(), sigma.item<float>(), 4);
    }

    [Fact]
    public void CircularPaddingMakesTheConvolutionShiftEquivariant()
    {
        using var generator = new Generator(9);
        using var conv = new CircularConv1d(3, 4, 9, circularPadding: true, generator);
        using var input = randn(new long[] { 2, 3, 16 }, generator: generator);
        using var shifted = input.roll(5, 2);
        using var output = conv.forward(input);
        using var outputOfShifted = conv.forward(shifted);
        using var shiftedOutput = output.roll(5, 2);
        Assert.Equal(new long[] { 2, 4, 16 }, output.shape);
        Assert.True(outputOfShifted.allclose(shiftedOutput, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void BatchNormLocalNormalisesEachGroupAndChannelOverTokens()
    {
        using var norm = new BatchNormLocal(3, virtualBatchSize: 1, eps: 1e-6);
        using var input = randn(4, 3, 50).mul_(3).add_(2);
        using var output = norm.forward(input);
        using var mean = output.mean([2]);
        using var variance = output.var(2, unbiased: false);
        Assert.True(mean.abs().max().item<float>() < 1e-5);
        Assert.True((variance - 1).abs().max().item<float>() < 1e-4);

        using var pairs = new BatchNormLocal(3, virtualBatchSize: 2, eps: 1e-6);
        using var duplicated = cat([input[..1], input[..1].mul(5).add(1)], 0);
        using var pairOutput = pairs.forward(duplicated);
        using var firstGroup = pairOutput.view(1, 2, 3, 50);
        using var groupMean = firstGroup.mean([1, 3]);
        Assert.True(groupMean.abs().max().item<float>() < 1e-5);
        Assert.False(pairOutput[0].allclose(pairOutput[1], rtol: 1e-3, atol: 1e-3), "a virtual batch of 2 shares statistics across samples");
        Assert.Throws<ArgumentException>(() => norm.forward(randn(2, 4, 10)));
    }

    [Fact]
    public void LossesMatchTheirFormulasOnHandValues()
    {
        using var real = tensor(new float[] { 2f, 0.5f, -1f, 1f });
        using var fake = tensor(new float[] { -2f, 0f, 0.5f, -1f });
        using var hinge = GanLosses.HingeDiscriminatorLoss(real, fake);
        // real: relu(1 − r) = 0, 0.5, 2, 0 → 0.625; fake: relu(1 + f) = 0, 1, 1.5, 0 → 0.625.
        Assert.Equal(0.625, hinge.item<float>(), 6);
        using var vanilla = GanLosses.VanillaDiscriminatorLoss(real, fake);
        double Softplus(double x) => Math.Log(1 + Math.Exp(x));
        var expected = 0.5 * ((Softplus(-2) + Softplus(-0.5) + Softplus(1) + Softplus(-1)) / 4 + (Softplus(-2) + Softplus(0) + Softplus(0.5) + Softplus(-1)) / 4);
        Assert.Equal(expected, vanilla.item<float>(), 6);
        using var accuracy = GanLosses.Accuracy(real, fake);
        Assert.Equal(0.75f, accuracy.item<float>());
        Assert.Contains("'wasserstein'", Assert.Throws<ArgumentException>(() => GanLosses.DiscriminatorLoss("wasserstein", real, fake)).Message);
    }
}
