using RAE.Models.Verification;
using Xunit.Abstractions;

namespace RAE.Models.Tests.Stage1.Discriminator;

public sealed class DinoDiscriminatorReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void DinoDiscCaseMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("dino_disc"));

        foreach (var result in results.OrderByDescending(r => r.MaxRelativeError).Take(8))
            output.WriteLine($"{result.Name}: relative {result.MaxRelativeError:g3} (abs {result.MaxAbsoluteError:g3}, tolerance {result.Tolerance:g2})");
        foreach (var result in results)
            Assert.True(result.Passed, $"{result.Name}: max abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3} > {result.Tolerance:g2}");

        // Every expected output of io.safetensors (all but the 4 inputs) and every gradient of train_step.safetensors.
        Assert.Equal(259, results.Count);
        var names = results.Select(r => r.Name).ToHashSet();
        foreach (var expected in new[]
                 {
                     "eval.logits.x64", "eval.logits.x256q", "trace.patch_embed.input", "trace.features.0", "trace.features.4",
                     "trace.heads.4", "loaded.blocks.11.attn.qkv.bias", "train.logits_fake", "train.logits_real", "train.d_loss",
                     "train.accuracy", "train.u_v.after_real.heads.4.1.fn.0.sigma", "eval.u_v.heads.0.2.weight_v",
                     "grad.heads.3.1.fn.0.weight_orig",
                 })
            Assert.Contains(expected, names);
        Assert.Equal(50, names.Count(n => n.StartsWith("grad.", StringComparison.Ordinal)));
        Assert.Equal(3 * 15, names.Count(n => n.StartsWith("train.u_v.after_fake.", StringComparison.Ordinal)));
    }

    [Fact]
    public void CheckerClaimsOnlyTheDinoDiscCase()
    {
        var checker = new DinoDiscriminatorCaseChecker();
        Assert.True(checker.CanCheck(ReferenceCase.Open(Fixtures.Case("dino_disc"))));
        Assert.False(checker.CanCheck(ReferenceCase.Open(Fixtures.Case("decoder_tiny"))));
        Assert.False(checker.CanCheck(ReferenceCase.Open(Fixtures.Case("transport"))));
    }
}

public sealed class DinoDiscriminatorCommandLineTests
{
    [Fact]
    public async Task VerifyReferencePassesTheDinoDiscCase()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exitCode = await RAE.Client.Commands.CommandLine.RunAsync(["verify-reference", Fixtures.Case("dino_disc")], output, error);
        Assert.True(exitCode == 0, $"exit {exitCode}\n{output}\n{error}");
        Assert.Contains("PASS", output.ToString());
        Assert.DoesNotContain("FAIL", output.ToString());
    }
}
