using RAE.Models.Verification;

namespace RAE.Models.Tests;

public sealed class Stage2ReferenceTests
{
    [Fact]
    public void DiTwDDTHeadMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("ddt_tiny"));
        AssertAllPass(results, "forward", "forward_x2", "forward_with_cfg", "guidance_forward_x2", "forward_with_autoguidance");
    }

    internal static void AssertAllPass(IReadOnlyList<OutputComparison> results, params string[] expectedOutputs)
    {
        var compared = results.Select(r => r.Name).ToHashSet();
        foreach (var expected in expectedOutputs) Assert.Contains(expected, compared);
        foreach (var result in results)
            Assert.True(result.Passed, $"{result.Name}: max abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3} > {result.Tolerance:g1}");
    }
}
