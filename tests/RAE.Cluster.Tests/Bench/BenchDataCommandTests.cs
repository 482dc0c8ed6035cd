using System.Text.Json;
using RAE.Cluster.Tests.Client;

namespace RAE.Cluster.Tests.Bench;

/// <summary>`rae bench data` runs end to end on a tiny setting and reports consistent rates (a smoke test, not a timing test).</summary>
public sealed class BenchDataCommandTests
{
    [Fact]
    public async Task TheDataBenchmarkReportsEncodeReadAndTrainingRatesWithTheirRatios()
    {
        var (exitCode, output, error) = await Cli.RunAsync(
            "bench", "data", "--model", "tiny", "--resolution", "32", "--images", "6", "--read-samples", "12", "--shard-size", "5", "--batch", "2", "--json");

        Assert.True(exitCode == 0, error);
        using var report = JsonDocument.Parse(output);
        var root = report.RootElement;
        Assert.Equal([512, 1, 1], root.GetProperty("encodedLatentShape").EnumerateArray().Select(v => v.GetInt64()));
        Assert.Equal([8, 4, 4], root.GetProperty("readLatentShape").EnumerateArray().Select(v => v.GetInt64()));
        Assert.Equal(6, root.GetProperty("ImagesEncoded").GetInt32());
        var encode = root.GetProperty("imagesPerSecondPerRank").GetDouble();
        var read = root.GetProperty("latentReadSamplesPerSecond").GetDouble();
        var training = root.GetProperty("trainingSamplesPerSecond").GetDouble();
        Assert.All(new[] { encode, read, training }, rate => Assert.True(rate > 0 && double.IsFinite(rate), $"rate {rate}"));
        Assert.Equal(read / training, root.GetProperty("readToTrainingRatio").GetDouble(), 9);
        Assert.Equal(encode / training, root.GetProperty("encodeToTrainingRatio").GetDouble(), 9);
        Assert.Equal(2 / training, root.GetProperty("trainingSecondsPerStep").GetDouble(), 9);
    }

    [Fact]
    public async Task AResolutionThatIsNotAMultipleOfTheStrideIsAUsageError()
    {
        var (exitCode, _, error) = await Cli.RunAsync("bench", "data", "--resolution", "48");
        Assert.Equal(2, exitCode);
        Assert.Contains("--resolution must be a positive multiple of 32", error);
    }
}
