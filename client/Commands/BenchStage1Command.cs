using System.CommandLine;
using System.Text.Json;
using RAE.Configuration;
using RAE.Models.Benchmarks;
using RAE.Models.Stage1;
using static TorchSharp.torch;

namespace RAE.Client.Commands;

/// <summary>
/// `rae bench stage1`: Stage 1 (decoder) training steps per second without and with the GAN branch, and the decoder's
/// model-FLOPs utilisation against the measured matmul peak, and CPU seconds per step (<see cref="Stage1DecoderBenchmark"/>).
/// The 1-minute load average before and after the run is printed (and in the JSON) so that figures taken on a shared
/// machine can be marked as loaded. Benchmark only.
/// </summary>
public sealed class BenchStage1Command : ICliCommand
{
    private readonly Option<string> _decoder = CliOptions.Choice("--decoder", "Decoder size: vitb (12 x 768, 256 px, 256 tokens), or tiny for tests", "vitb", "vitb", "tiny");
    private readonly Option<int> _batch = new("--batch") { HelpName = "N", Description = "Images per step", DefaultValueFactory = _ => 4 };
    private readonly Option<int> _steps = new("--steps") { HelpName = "N", Description = "Measured steps per mode", DefaultValueFactory = _ => 3 };
    private readonly Option<int> _warmup = new("--warmup") { HelpName = "N", Description = "Unmeasured steps first", DefaultValueFactory = _ => 1 };
    private readonly Option<string> _precision = CliOptions.Choice("--precision", "Decoder compute precision (training.precision)", "fp32", "fp32", "bf16");
    private readonly Option<int> _matmulSize = new("--matmul-size") { HelpName = "N", Description = "Size of the square matmul that measures the peak", DefaultValueFactory = _ => 2048 };
    private readonly Option<bool> _json = CliOptions.Json();

    public BenchStage1Command() =>
        Command = new Command("stage1", "Benchmark Stage 1 decoder training: steps/s with and without the GAN branch, decoder MFU")
        {
            _decoder, _batch, _steps, _warmup, _precision, _matmulSize, _json,
        };

    public string Name => "bench stage1";

    public Command Command { get; }

    public Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var json = parsed.GetValue(_json);
        var batch = parsed.GetValue(_batch);
        var steps = parsed.GetValue(_steps);
        var warmup = parsed.GetValue(_warmup);
        var matmulSize = parsed.GetValue(_matmulSize);
        if (batch < 1) throw new UsageException($"--batch must be at least 1, got {batch}");
        if (steps < 1) throw new UsageException($"--steps must be at least 1, got {steps}");
        if (warmup < 0) throw new UsageException($"--warmup must not be negative, got {warmup}");
        if (matmulSize < 1) throw new UsageException($"--matmul-size must be positive, got {matmulSize}");
        var architecture = parsed.GetRequiredValue(_decoder) == "tiny"
            ? new DecoderConfig(64, 32, 1, 2, 64, 32, 64)
            : DecoderConfig.ViTB;
        var precision = parsed.GetRequiredValue(_precision) == "bf16" ? ComputePrecision.BFloat16 : ComputePrecision.Float32;
        var target = cuda.is_available() ? CUDA : CPU;
        var loadBefore = LoadAverage();
        var report = Stage1DecoderBenchmark.Run(architecture, batch, steps, warmup, target, matmulSize, precision, json ? null : line => output.WriteLine(line));
        var loadAfter = LoadAverage();
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new { Report = report, LoadAverageBefore = loadBefore, LoadAverageAfter = loadAfter, Environment.ProcessorCount },
                new JsonSerializerOptions { WriteIndented = true }));
            return Task.FromResult(0);
        }
        output.WriteLine($"decoder {report.Decoder} ({report.DecoderParameters / 1e6:F1} M parameters, {report.Tokens} tokens), batch {report.Batch}, "
            + $"{report.Precision}, {report.Threads} threads on {Environment.ProcessorCount} cores, device {target.type}");
        output.WriteLine($"{"mode",-40} {"s/step",8} {"CPU s",8} {"steps/s",8} {"img/s",8} {"TFLOP",7} {"MFU",7}");
        foreach (var mode in report.Modes)
            output.WriteLine($"{mode.Mode,-40} {mode.SecondsPerStep,8:F3} {mode.CpuSecondsPerStep,8:F3} {mode.StepsPerSecond,8:F3} {mode.ImagesPerSecond,8:F2} {mode.DecoderTflopPerStep,7:F3} {mode.DecoderMfu,7:P1}");
        if (loadBefore is { } before && loadAfter is { } after)
            output.WriteLine($"load average (1 min) {before:F1} before, {after:F1} after, on {Environment.ProcessorCount} cores"
                + (Math.Max(before, after) > Environment.ProcessorCount / 2.0 ? ": LOADED machine, wall-clock figures are pessimistic (CPU s/step is the steadier one)" : ""));
        return Task.FromResult(0);
    }

    /// <summary>The 1-minute load average from /proc/loadavg (Linux), or null where there is none.</summary>
    private static double? LoadAverage()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ', 2)[0];
            return double.Parse(first, System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
