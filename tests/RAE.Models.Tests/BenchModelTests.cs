using System.Text.Json;
using RAE.Client.Commands;
using RAE.Models.Stage2;

namespace RAE.Models.Tests;

public sealed class BenchModelTests
{
    [Fact]
    public void ForwardFlopsCountEveryMatmulAtItsTokenCount()
    {
        var tiny = new DiTwDDTHeadOptions
        {
            InputSize = 4, InChannels = 8, HiddenSize = new(64, 96), Depth = new(2, 1), NumHeads = new(4, 4), NumClasses = 10,
        };
        // 16 tokens; SwiGLU hidden 170 (encoder) and 256 (head).
        double patchEmbeds = 2 * 16 * 8 * 64 + 2 * 16 * 8 * 96;
        double timeMlp = 2 * (512 * 64 + 64 * 64);
        double encoderBlock = 2 * 16 * 64 * 192 + 4 * 16 * 16 * 64 + 2 * 16 * 64 * 64 + 2 * 16 * 3 * 64 * 170 + 2 * 6 * 64 * 64;
        double projector = 2 * 16 * 64 * 96;
        double headBlock = 2 * 16 * 96 * 288 + 4 * 16 * 16 * 96 + 2 * 16 * 96 * 96 + 2 * 16 * 3 * 96 * 256 + 2 * 16 * 6 * 96 * 96;
        double finalLayer = 2 * 16 * 96 * 192 + 2 * 16 * 96 * 8;
        var expected = patchEmbeds + timeMlp + 2 * encoderBlock + projector + headBlock + finalLayer;
        Assert.Equal(expected, ModelFlops.ForwardPerSample(tiny));
        Assert.Equal(3 * expected, ModelFlops.TrainingStepPerSample(tiny));
    }

    [Fact]
    public void FmaProbeUsesTheWidestVectorsTheCpuHas()
    {
        var peak = Benchmarks.CpuFmaPeakProbe.Measure(threads: 1, iterationsPerRun: 100_000, repeats: 1);
        if (!System.Runtime.Intrinsics.X86.Fma.IsSupported)
        {
            Assert.Null(peak);
            return;
        }
        Assert.NotNull(peak);
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? 512 : 256, peak.VectorBits);
        Assert.True(peak.GflopsPerSecond > 0);
        Assert.Throws<ArgumentException>(() => Benchmarks.CpuFmaPeakProbe.Measure(threads: 0));
    }

    [Theory]
    [InlineData("fp32", "Float32")]
    [InlineData("bf16", "BFloat16")]
    public async Task BenchModelJsonReportsMeasuredRatesConsistentWithThePeak(string precision, string matmulType)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await CommandLine.RunAsync(
            ["bench", "model", "--model", "tiny", "--batch", "2,3", "--steps", "1", "--warmup", "0", "--matmul-size", "64", "--device", "cpu", "--precision", precision, "--json"],
            output, error);
        Assert.True(exitCode == 0, error.ToString());
        using var report = JsonDocument.Parse(output.ToString());
        var root = report.RootElement;
        Assert.Equal(precision, root.GetProperty("Precision").GetString());
        Assert.Equal(matmulType, root.GetProperty("MatmulPeak").GetProperty("DataType").GetString());
        var peak = root.GetProperty("MatmulPeak").GetProperty("GflopsPerSecond").GetDouble();
        Assert.True(peak > 0);
        var forwardGflops = root.GetProperty("ForwardGflopsPerSample").GetDouble();
        // The FMA ceiling is an fp32 CPU figure: measured for fp32 (on an FMA-capable CPU), absent for bf16.
        var fmaPeak = root.GetProperty("CpuFmaPeak");
        double? fmaCeiling = fmaPeak.ValueKind == JsonValueKind.Null ? null : fmaPeak.GetProperty("GflopsPerSecond").GetDouble();
        if (precision == "bf16") Assert.Null(fmaCeiling);
        else if (System.Runtime.Intrinsics.X86.Fma.IsSupported) Assert.True(fmaCeiling > peak * 0.5, $"FMA ceiling {fmaCeiling} vs matmul peak {peak}");
        var batches = root.GetProperty("Batches").EnumerateArray().ToList();
        Assert.Equal([2, 3], batches.Select(b => b.GetProperty("BatchSize").GetInt32()));
        foreach (var batch in batches)
        {
            var size = batch.GetProperty("BatchSize").GetInt32();
            var steps = batch.GetProperty("TrainStepsPerSecond").GetDouble();
            var forwards = batch.GetProperty("SamplingForwardPassesPerSecond").GetDouble();
            Assert.True(steps > 0 && forwards > 0);
            Assert.True(double.IsFinite(batch.GetProperty("LastTrainingLoss").GetDouble()));
            var trainGflops = batch.GetProperty("TrainModelGflopsPerSecond").GetDouble();
            Assert.Equal(3 * forwardGflops * size * steps, trainGflops, 1e-9);
            Assert.Equal(trainGflops / peak, batch.GetProperty("TrainModelFlopsUtilisation").GetDouble(), 1e-9);
            Assert.Equal(forwardGflops * size * forwards / peak, batch.GetProperty("SamplingModelFlopsUtilisation").GetDouble(), 1e-9);
            Assert.Equal(3 * forwardGflops * size / peak, batch.GetProperty("TrainSecondsPerStepAtMatmulPeak").GetDouble(), 1e-9);
            var atFmaPeak = batch.GetProperty("TrainSecondsPerStepAtFmaPeak");
            if (fmaCeiling is { } ceiling) Assert.Equal(3 * forwardGflops * size / ceiling, atFmaPeak.GetDouble(), 1e-9);
            else Assert.Equal(JsonValueKind.Null, atFmaPeak.ValueKind);
        }
    }

    [Fact]
    public async Task BenchModelRejectsBadOptionsByName()
    {
        var error = new StringWriter();
        Assert.Equal(2, await CommandLine.RunAsync(["bench", "model", "--precision", "fp8"], new StringWriter(), error));
        Assert.Contains("--precision expects fp32 or bf16, got 'fp8'", error.ToString());
        error = new StringWriter();
        Assert.Equal(2, await CommandLine.RunAsync(["bench", "model", "--batch", "4,x"], new StringWriter(), error));
        Assert.Contains("--batch expects positive integers", error.ToString());
    }

    [Fact]
    public async Task CompareKernelsReportsEachKernelInBothPrecisionsWithRatios()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await CommandLine.RunAsync(
            ["bench", "model", "--compare-kernels", "--model", "tiny", "--batch", "2", "--steps", "1", "--device", "cpu", "--json"], output, error);
        Assert.True(exitCode == 0, error.ToString());
        using var report = JsonDocument.Parse(output.ToString());
        var rows = report.RootElement.EnumerateArray().ToList();
        Assert.Equal(6, rows.Count);
        Assert.Equal(["bf16", "fp32"], rows.Select(r => r.GetProperty("Precision").GetString()).Distinct().Order());
        // The tiny model's head: 16 tokens, width 96, SwiGLU hidden int(2/3·384) = 256 (already aligned).
        Assert.Contains(rows, r => r.GetProperty("Kernel").GetString() == "silu*gate" && r.GetProperty("Shape").GetString() == "2x16x512");
        foreach (var row in rows)
        {
            Assert.Equal(9, row.GetProperty("Pairs").GetInt32());
            var composed = row.GetProperty("Composed");
            var fused = row.GetProperty("Fused");
            Assert.True(composed.GetProperty("MinWallMs").GetDouble() > 0 && fused.GetProperty("MinWallMs").GetDouble() > 0);
            Assert.True(composed.GetProperty("MinCpuMs").GetDouble() <= composed.GetProperty("MedianCpuMs").GetDouble());
            Assert.Equal(fused.GetProperty("MinWallMs").GetDouble() / composed.GetProperty("MinWallMs").GetDouble(),
                row.GetProperty("MinWallRatio").GetDouble(), 1e-9);
            Assert.Equal(composed.GetProperty("MinCpuMs").GetDouble() > 0, row.GetProperty("MinCpuRatio").ValueKind == JsonValueKind.Number);
        }
    }

    [Theory]
    [InlineData("fp32")]
    [InlineData("bf16")]
    public async Task BenchModelProfileSplitsBothZeroGradModesAndTimesTheBlocks(string precision)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await CommandLine.RunAsync(
            ["bench", "model", "--profile", "--model", "tiny", "--batch", "2", "--steps", "1", "--device", "cpu", "--precision", precision, "--json"], output, error);
        Assert.True(exitCode == 0, error.ToString());
        using var report = JsonDocument.Parse(output.ToString());
        var root = report.RootElement;
        Assert.Equal(2, root.GetProperty("BatchSize").GetInt32());
        Assert.Equal(precision, root.GetProperty("Precision").GetString());
        Assert.True(root.GetProperty("Threads").GetInt32() >= 1);
        var phases = root.GetProperty("Phases").EnumerateArray()
            .ToDictionary(p => p.GetProperty("Phase").GetString()!, p => p.GetProperty("Seconds").GetDouble());
        foreach (var mode in new[] { "zeroed", "none" })
        {
            var parts = new[] { "zero_grad", "forward", "loss", "backward", "adamw" }.Select(name => phases[$"{name} ({mode})"]).ToList();
            Assert.All(parts, seconds => Assert.True(seconds >= 0));
            Assert.True(phases[$"forward ({mode})"] > 0 && phases[$"backward ({mode})"] > 0);
            Assert.Equal(parts.Sum(), phases[$"step ({mode})"], 1e-9);
        }
        var components = root.GetProperty("Components").EnumerateArray().ToList();
        var names = components.Select(c => c.GetProperty("Name").GetString()).ToList();
        Assert.Contains("encoder rope q,k", names);
        Assert.Contains("head block", names);
        var headBlock = components.Single(c => c.GetProperty("Name").GetString() == "head block");
        Assert.Equal(1, headBlock.GetProperty("Count").GetInt32());
        Assert.True(headBlock.GetProperty("ForwardSeconds").GetDouble() > 0 && headBlock.GetProperty("BackwardSeconds").GetDouble() > 0);
        Assert.True(phases["sampling forward"] > 0);
        // Category totals are the ops' times times their counts per step; whole modules are left out of them.
        var categories = root.GetProperty("Categories").EnumerateArray()
            .ToDictionary(c => c.GetProperty("Category").GetString()!, c => c.GetProperty("ForwardSeconds").GetDouble() + c.GetProperty("BackwardSeconds").GetDouble());
        Assert.Equal(["Attention", "Elementwise", "Layout", "Matmul", "Norm"], categories.Keys.Order());
        foreach (var (category, seconds) in categories)
        {
            var rows = components.Where(c => c.GetProperty("Category").GetString() == category);
            var expected = rows.Sum(c => c.GetProperty("Count").GetInt32() * (c.GetProperty("ForwardSeconds").GetDouble() + c.GetProperty("BackwardSeconds").GetDouble()));
            Assert.Equal(expected, seconds, 1e-9);
        }
        Assert.Equal("Module", headBlock.GetProperty("Category").GetString());
    }
}
