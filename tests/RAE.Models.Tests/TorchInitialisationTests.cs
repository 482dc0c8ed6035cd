using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class TorchInitialisationTests
{
    [Fact]
    public void TorchInitialisesAndComputesMatmulSdpaAndGradients()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 }, requires_grad: true);
        var b = tensor(new float[] { 5, 6, 7, 8 }, new long[] { 2, 2 });
        var product = a.matmul(b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, product.data<float>().ToArray());

        product.sum().backward();
        Assert.Equal(new float[] { 11, 15, 11, 15 }, a.grad!.data<float>().ToArray());

        var q = ones(1, 1, 3, 4);
        var attended = nn.functional.scaled_dot_product_attention(q, q, arange(12, dtype: float32).reshape(1, 1, 3, 4));
        Assert.Equal(new long[] { 1, 1, 3, 4 }, attended.shape);
        Assert.Equal(4f, attended[0, 0, 0, 0].item<float>(), 4);
    }
}
