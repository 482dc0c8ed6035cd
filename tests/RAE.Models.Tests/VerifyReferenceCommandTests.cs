using RAE.Client.Commands;

namespace RAE.Models.Tests;

public sealed class VerifyReferenceCommandTests
{
    public static TheoryData<string> Cases => new() { "ddt_tiny", "lightningdit_tiny", "decoder_tiny", "transport", "sampler" };

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exitCode = await CommandLine.RunAsync(args, output, error);
        return (exitCode, output.ToString(), error.ToString());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task EveryFixtureCasePassesAtTheDefaultTolerance(string caseName)
    {
        var (exitCode, output, error) = await RunAsync("verify-reference", Fixtures.Case(caseName));
        Assert.True(exitCode == 0, $"exit {exitCode}\n{output}\n{error}");
        Assert.Contains("PASS", output);
        Assert.DoesNotContain("FAIL", output);
    }

    [Fact]
    public async Task AnImpossiblyTightToleranceFailsWithExitCodeOne()
    {
        var (exitCode, output, _) = await RunAsync("verify-reference", Fixtures.Case("ddt_tiny"), "--tolerance", "1e-30");
        Assert.Equal(1, exitCode);
        Assert.Contains("FAIL", output);
    }

    [Fact]
    public async Task JsonOutputListsEveryComparedOutput()
    {
        var (exitCode, output, _) = await RunAsync("verify-reference", Fixtures.Case("ddt_tiny"), "--json");
        Assert.Equal(0, exitCode);
        using var document = System.Text.Json.JsonDocument.Parse(output);
        Assert.True(document.RootElement.GetProperty("passed").GetBoolean());
        var names = document.RootElement.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()).ToList();
        Assert.Contains("forward", names);
        Assert.Contains("forward_with_cfg", names);
        Assert.Contains("forward_with_autoguidance", names);
    }

    [Fact]
    public async Task AMissingFolderIsNamedInTheError()
    {
        var missing = Path.Combine(Path.GetTempPath(), "rae-no-such-case-" + Guid.NewGuid().ToString("N"));
        var (exitCode, _, error) = await RunAsync("verify-reference", missing);
        Assert.Equal(1, exitCode);
        Assert.Contains(missing, error);
    }

    [Fact]
    public async Task ACaseWithNothingCheckableFails()
    {
        var directory = Directory.CreateTempSubdirectory("rae-case-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(directory, "case.json"), """{"model": "some.unknown.Model"}""");
            var (exitCode, _, error) = await RunAsync("verify-reference", directory);
            Assert.Equal(1, exitCode);
            Assert.Contains("some.unknown.Model", error);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task BadUsageExitsWithTwo()
    {
        Assert.Equal(2, (await RunAsync("verify-reference")).ExitCode);
        Assert.Equal(2, (await RunAsync("verify-reference", "a", "--tolerance", "abc")).ExitCode);
        Assert.Equal(2, (await RunAsync("verify-reference", "a", "--no-such-option", "1")).ExitCode);
        Assert.Equal(2, (await RunAsync("no-such-command")).ExitCode);
    }
}
