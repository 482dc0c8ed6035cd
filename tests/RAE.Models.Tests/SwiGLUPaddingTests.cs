using RAE.Models.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class SwiGLUPaddingTests
{
    [Theory]
    [InlineData(37, 64)]
    [InlineData(5461, 5504)]
    [InlineData(128, 128)]
    public void HiddenWidthIsRoundedUpToTheAlignment(long hidden, long computed) =>
        Assert.Equal(computed, new SwiGLUFFN(8, hidden).ComputeHiddenSize);

    [Fact]
    public void PaddedLayerComputesTheUnpaddedOutputAndGradients()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var mlp = new SwiGLUFFN(24, 37);
        var parameters = mlp.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal([74L, 24L], parameters["w12.weight"].shape);
        Assert.Equal([24L, 37L], parameters["w3.weight"].shape);
        using (no_grad())
        {
            foreach (var parameter in parameters.Values) parameter.uniform_(-0.5, 0.5);
        }
        var input = randn(2, 5, 24);

        var paddedInput = input.clone().requires_grad_(true);
        var padded = mlp.forward(paddedInput);
        padded.sum().backward();
        var paddedGradients = parameters.ToDictionary(p => p.Key, p => p.Value.grad!.clone());

        mlp.zero_grad();
        var plainInput = input.clone().requires_grad_(true);
        var halves = nn.functional.linear(plainInput, parameters["w12.weight"], parameters["w12.bias"]).chunk(2, -1);
        var plain = nn.functional.linear(nn.functional.silu(halves[0]) * halves[1], parameters["w3.weight"], parameters["w3.bias"]);
        plain.sum().backward();

        Assert.Equal(plain.shape, padded.shape);
        Assert.True(padded.allclose(plain, 1e-5, 1e-6), $"max output difference {(padded - plain).abs().max().item<float>()}");
        Assert.True(paddedInput.grad!.allclose(plainInput.grad!, 1e-5, 1e-6));
        foreach (var (name, parameter) in parameters)
        {
            Assert.Equal(parameter.shape, paddedGradients[name].shape);
            Assert.True(paddedGradients[name].allclose(parameter.grad!, 1e-5, 1e-6), $"gradient of {name} differs");
        }
    }
}
