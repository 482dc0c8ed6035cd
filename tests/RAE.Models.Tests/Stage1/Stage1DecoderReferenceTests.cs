using RAE.Models.IO;
using RAE.Models.Verification;

namespace RAE.Models.Tests.Stage1;

public sealed class Stage1DecoderReferenceTests
{
    [Fact]
    public void DecoderTinyIoHoldsTheInputsAndOutputsTheCheckerReads()
    {
        var io = SafeTensors.Load(Path.Combine(Fixtures.Case("decoder_tiny"), "io.safetensors"));
        try
        {
            foreach (var key in new[] { "tokens", "z", "latent_mean", "latent_var", "logits", "pixels", "rae_decode", "rae_decode_no_normalization" })
                Assert.True(io.ContainsKey(key), $"io.safetensors lacks '{key}'; it has {string.Join(", ", io.Keys)}");
        }
        finally
        {
            foreach (var tensor in io.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void DecoderTinyMatchesTheReferenceThroughTheVerifier()
    {
        var comparisons = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("decoder_tiny"), 1e-5);

        var names = comparisons.Select(c => c.Name).ToHashSet();
        Assert.Equal(new[] { "logits", "pixels", "rae_decode", "rae_decode_no_normalization" }.ToHashSet(), names);
        foreach (var comparison in comparisons)
            Assert.True(comparison.Passed, $"{comparison.Name}: relative error {comparison.MaxRelativeError:E3} (abs {comparison.MaxAbsoluteError:E3})");
    }
}
