using RAE.Client.Commands;
using Xunit.Abstractions;

namespace RAE.Models.Tests.Stage1.Losses;

public sealed class Stage1LossVerifyReferenceCommandTests(ITestOutputHelper log)
{
    public static TheoryData<string> Cases => new() { "gan_losses", "diffaug", "lpips_vgg", "adaptive_weight" };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task EveryStage1LossCasePassesThroughVerifyReference(string caseName)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var tolerance = (caseName == "lpips_vgg" ? Fixtures.ConvolutionStackTolerance : Verification.ReferenceVerifier.DefaultTolerance)
            .ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var exitCode = await CommandLine.RunAsync(["verify-reference", Fixtures.Case(caseName), "--tolerance", tolerance], output, error);
        log.WriteLine(output.ToString());
        Assert.True(exitCode == 0, $"exit {exitCode}\n{output}\n{error}");
        Assert.Contains("PASS", output.ToString());
        Assert.DoesNotContain("FAIL", output.ToString());
    }

    [Fact]
    public async Task AdaptiveWeightWithoutItsLpipsSiblingNamesTheMissingCase()
    {
        var directory = Directory.CreateTempSubdirectory("rae-aw-").FullName;
        try
        {
            var copy = Path.Combine(directory, "adaptive_weight");
            Directory.CreateDirectory(copy);
            foreach (var file in Directory.GetFiles(Fixtures.Case("adaptive_weight")))
                File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            using var output = new StringWriter();
            using var error = new StringWriter();
            var exitCode = await CommandLine.RunAsync(["verify-reference", copy], output, error);
            Assert.Equal(1, exitCode);
            Assert.Contains("lpips_vgg", error.ToString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
