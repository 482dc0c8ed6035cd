using System.Text.Json;
using RAE.Models.Stage2;
using EncoderDecoderPair = RAE.Configuration.EncoderDecoderPair;

namespace RAE.Models.Tests;

public sealed class Stage2OptionsTests
{
    [Fact]
    public void ReadsReferenceParamsWithIntOrPairValues()
    {
        using var document = JsonDocument.Parse("""
            {"input_size": 32, "patch_size": [2, 1], "hidden_size": [384, 2048], "depth": [12, 2], "num_heads": 6, "wo_shift": true}
            """);
        var options = DiTwDDTHeadOptions.FromReferenceParams(document.RootElement);
        Assert.Equal(32, options.InputSize);
        Assert.Equal(new EncoderDecoderPair(2, 1), options.PatchSize);
        Assert.Equal(new EncoderDecoderPair(384, 2048), options.HiddenSize);
        Assert.Equal(new EncoderDecoderPair(12, 2), options.Depth);
        Assert.Equal(EncoderDecoderPair.Both(6), options.NumHeads);
        Assert.True(options.WoShift);
        Assert.Equal(768, options.InChannels);
        Assert.Equal(DiTwDDTHeadOptions.S with { InputSize = 32, PatchSize = new(2, 1), NumHeads = EncoderDecoderPair.Both(6), WoShift = true }, options);
    }

    [Theory]
    [InlineData("""{"depth": 4}""", "'depth' must be a pair [encoder, decoder], got 4")]
    [InlineData("""{"hidden_size": "big"}""", "'hidden_size' must be an integer or a pair")]
    [InlineData("""{"use_rope": 1}""", "'use_rope' must be true or false")]
    [InlineData("""{"learn_sigma": true}""", "unknown key(s) learn_sigma")]
    public void BadParamsNameTheKey(string json, string expected)
    {
        using var document = JsonDocument.Parse(json);
        var error = Assert.Throws<InvalidDataException>(() => DiTwDDTHeadOptions.FromReferenceParams(document.RootElement));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void InconsistentOptionsAreRejectedBeforeBuilding()
    {
        var error = Assert.Throws<ArgumentException>(() => new DiTwDDTHead(DiTwDDTHeadOptions.XL with { NumHeads = new(7, 16) }));
        Assert.Contains("hidden_size 1152 is not divisible by num_heads 7", error.Message);
        error = Assert.Throws<ArgumentException>(() => new DiTwDDTHead(DiTwDDTHeadOptions.XL with { PatchSize = new(1, 2) }));
        Assert.Contains("not a multiple of the encoder's", error.Message);
    }
}
