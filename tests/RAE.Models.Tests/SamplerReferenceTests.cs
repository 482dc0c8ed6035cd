using Xunit.Abstractions;
using RAE.Models.Verification;

namespace RAE.Models.Tests;

public sealed class SamplerReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void SamplerCaseMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("sampler"));
        var expected = new List<string> { "time_grid" };
        foreach (var run in new[] { "euler_noguidance", "euler_cfg", "heun2_noguidance", "heun2_cfg", "euler_autoguidance" })
            expected.AddRange(new[] { $"{run}.trajectory", $"{run}.final", $"{run}.samples", $"{run}.call_t" });
        TransportReferenceAssertions.AssertAllPass(results, expected.ToArray());
        Assert.Equal(expected.Count, results.Count);
        var worst = results.MaxBy(r => r.MaxRelativeError)!;
        output.WriteLine($"{results.Count} outputs, worst {worst.Name}: relative {worst.MaxRelativeError:g3}");
    }
}
