using RAE.Models.Verification;
using Xunit.Abstractions;

namespace RAE.Models.Tests;

public sealed class Stage2ReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void DiTwDDTHeadMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("ddt_tiny"));
        AssertAllPass(results, "forward", "forward_x2", "forward_with_cfg", "guidance_forward_x2", "forward_with_autoguidance");
    }

    [Fact]
    public void LightningDiTMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("lightningdit_tiny"));
        AssertAllPass(results, "forward", "cfg_outside_interval", "cfg_inside_interval_condonly", "cfg_inside_interval_icfg1.5");
    }

    private void AssertAllPass(IReadOnlyList<OutputComparison> results, params string[] expectedOutputs)
    {
        foreach (var result in results)
            output.WriteLine($"{result.Name}: max abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3}");
        var compared = results.Select(r => r.Name).ToHashSet();
        foreach (var expected in expectedOutputs) Assert.Contains(expected, compared);
        foreach (var result in results)
            Assert.True(result.Passed, $"{result.Name}: max abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3} > {result.Tolerance:g1}");
    }
}
