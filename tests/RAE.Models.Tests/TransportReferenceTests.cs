using Xunit.Abstractions;
using RAE.Models.Verification;

namespace RAE.Models.Tests;

public sealed class TransportReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void TransportCaseMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("transport"));
        var expected = new List<string>
        {
            "time.uniform_shift1.t", "time.uniform_shiftS.t", "time.logit-normal_shift1.t", "time.logit-normal_shiftS.t",
            "path.xt", "path.ut", "loss.xt", "loss.ut", "loss.pred", "loss.per_sample", "loss.mean",
            "loss_train.per_sample", "loss_train.mean", "grad_total_norm",
            "grad.blocks.2.mlp.w12.weight", "grad_clipped.t_embedder.mlp.0.weight", "param_after.y_embedder.embedding_table.weight",
        };
        TransportReferenceAssertions.AssertAllPass(results, expected.ToArray());
        var worst = results.MaxBy(r => r.MaxRelativeError)!;
        output.WriteLine($"{results.Count} outputs, worst {worst.Name}: relative {worst.MaxRelativeError:g3}");
        // 52 trainable tensors (all but pos_embed and t_embedder.W), each with grad, grad_clipped and param_after.
        Assert.Equal(52, results.Count(r => r.Name.StartsWith("grad.", StringComparison.Ordinal)));
        Assert.Equal(52, results.Count(r => r.Name.StartsWith("grad_clipped.", StringComparison.Ordinal)));
        Assert.Equal(52, results.Count(r => r.Name.StartsWith("param_after.", StringComparison.Ordinal)));
    }

    [Fact]
    public void Stage2ModelCheckerDoesNotClaimTransportOrSamplerCases()
    {
        var checker = new Stage2ModelCaseChecker();
        Assert.False(checker.CanCheck(ReferenceCase.Open(Fixtures.Case("transport"))));
        Assert.False(checker.CanCheck(ReferenceCase.Open(Fixtures.Case("sampler"))));
        Assert.True(new TransportCaseChecker().CanCheck(ReferenceCase.Open(Fixtures.Case("transport"))));
        Assert.False(new TransportCaseChecker().CanCheck(ReferenceCase.Open(Fixtures.Case("sampler"))));
        Assert.True(new SamplerCaseChecker().CanCheck(ReferenceCase.Open(Fixtures.Case("sampler"))));
        Assert.False(new SamplerCaseChecker().CanCheck(ReferenceCase.Open(Fixtures.Case("transport"))));
        Assert.False(new SamplerCaseChecker().CanCheck(ReferenceCase.Open(Fixtures.Case("ddt_tiny"))));
        Assert.False(new TransportCaseChecker().CanCheck(ReferenceCase.Open(Fixtures.Case("ddt_tiny"))));
    }
}

/// <summary>Every expected output was compared, and every comparison passed (errors named in the message).</summary>
internal static class TransportReferenceAssertions
{
    public static void AssertAllPass(IReadOnlyList<OutputComparison> results, params string[] expectedOutputs)
    {
        var compared = results.Select(r => r.Name).ToHashSet();
        foreach (var expected in expectedOutputs) Assert.Contains(expected, compared);
        foreach (var result in results)
            Assert.True(result.Passed, $"{result.Name}: max abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3} > {result.Tolerance:g1}");
    }
}
