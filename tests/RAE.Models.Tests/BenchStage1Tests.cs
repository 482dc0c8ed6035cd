using System.Text.Json;
using RAE.Client.Commands;

namespace RAE.Models.Tests;

public sealed class BenchStage1Tests
{
    /// <summary>
    /// `rae bench stage1 --json` on the tiny decoder: both modes (without and with the GAN branch), each with its rates, CPU
    /// time and MFU consistent with the decoder's FLOPs and the measured peak; the precision and the load are reported.
    /// </summary>
    [Theory]
    [InlineData("fp32", "Float32")]
    [InlineData("bf16", "BFloat16")]
    public async Task BenchStage1JsonReportsBothModesWithRatesCpuTimeAndMfu(string precision, string matmulType)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await CommandLine.RunAsync(
            ["bench", "stage1", "--decoder", "tiny", "--batch", "2", "--steps", "1", "--warmup", "0", "--matmul-size", "64", "--precision", precision, "--json"],
            output, error);
        Assert.True(exitCode == 0, error.ToString());
        using var document = JsonDocument.Parse(output.ToString());
        var root = document.RootElement;
        Assert.True(root.GetProperty("ProcessorCount").GetInt32() >= 1);
        if (OperatingSystem.IsLinux()) Assert.True(root.GetProperty("LoadAverageBefore").GetDouble() >= 0);
        var report = root.GetProperty("Report");
        Assert.Equal(precision, report.GetProperty("Precision").GetString());
        Assert.Equal(matmulType, report.GetProperty("MatmulPeak").GetProperty("DataType").GetString());
        var peak = report.GetProperty("MatmulPeak").GetProperty("GflopsPerSecond").GetDouble();
        var parameters = report.GetProperty("DecoderParameters").GetInt64();
        var tokens = report.GetProperty("Tokens").GetInt32();
        Assert.Equal(2, report.GetProperty("Batch").GetInt32());
        Assert.True(peak > 0 && parameters > 0 && tokens > 0);

        var modes = report.GetProperty("Modes").EnumerateArray().ToList();
        Assert.Equal(["L1 + perceptual", "L1 + perceptual + GAN (1 disc update)"], modes.Select(m => m.GetProperty("Mode").GetString()));
        // The tiny decoder: 1 layer, 32 wide; dense FLOPs 6·P·(T+1)·B plus attention 12·L·(T+1)²·D·B.
        var flop = 6.0 * parameters * (tokens + 1) * 2 + 12.0 * 1 * Math.Pow(tokens + 1, 2) * 32 * 2;
        foreach (var mode in modes)
        {
            var seconds = mode.GetProperty("SecondsPerStep").GetDouble();
            Assert.True(seconds > 0);
            Assert.Equal(1 / seconds, mode.GetProperty("StepsPerSecond").GetDouble(), 1e-9);
            Assert.Equal(2 / seconds, mode.GetProperty("ImagesPerSecond").GetDouble(), 1e-9);
            Assert.Equal(flop / 1e12, mode.GetProperty("DecoderTflopPerStep").GetDouble(), 1e-15);
            Assert.Equal(flop / seconds / (peak * 1e9), mode.GetProperty("DecoderMfu").GetDouble(), 1e-9);
            Assert.True(mode.GetProperty("CpuSecondsPerStep").GetDouble() > 0, "a step takes CPU time");
        }
    }

    [Fact]
    public async Task BenchStage1RejectsBadOptionsByName()
    {
        var error = new StringWriter();
        Assert.Equal(2, await CommandLine.RunAsync(["bench", "stage1", "--precision", "fp8"], new StringWriter(), error));
        Assert.Contains("--precision expects fp32 or bf16, got 'fp8'", error.ToString());
        error = new StringWriter();
        Assert.Equal(2, await CommandLine.RunAsync(["bench", "stage1", "--steps", "0"], new StringWriter(), error));
        Assert.Contains("--steps must be at least 1, got 0", error.ToString());
    }
}
