using RAE.Models.Nn;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class PatchEmbedLayoutTests
{
    /// <summary>
    /// Patch tokens leave the embedding contiguous in [B, N, E]: the transposed conv output would carry a [B, E, N] memory
    /// layout through every residual sum of the blocks, where bf16 matmuls fall off oneDNN onto a slow generic kernel.
    /// </summary>
    [Fact]
    public void PatchTokensAreContiguousAndEqualTheTransposedConvOutput()
    {
        using var scope = NewDisposeScope();
        using var embed = new PatchEmbed(imageSize: 4, patchSize: 2, inChannels: 3, embedDim: 5);
        var x = randn(2, 3, 4, 4);
        var tokens = embed.forward(x);
        Assert.True(tokens.is_contiguous());
        Assert.Equal([2L, 4, 5], tokens.shape);
        var expected = embed.Projection.forward(x).flatten(2).transpose(1, 2);
        Assert.True(tokens.eq(expected).all().item<bool>());
    }
}
