using RAE.Configuration;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RAE.Models.Benchmarks;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Client.Commands;

/// <summary>
/// `rae bench model`: DiT^DH training steps/s, sampling forward passes/s, the measured matmul peak and model-FLOPs
/// utilisation. Options: --model s|xl|tiny (default s = DiT^DH-S at 16×16×768), --batch 4,8, --steps, --warmup,
/// --precision fp32|bf16, --device cpu|cuda[:n] (default cuda when available), --matmul-size, --seed, --json.
/// --profile instead splits a training step (in --precision) at the first batch size into phases, times a sampling forward
/// pass, and times the blocks' ops and modules alone, with per-category totals (matmul, attention, norm, elementwise, layout).
/// --compare-kernels instead times the fused autograd nodes against the composed graphs (A/B pairs, medians, ratios).
/// </summary>
public sealed class BenchModelCommand : ICliCommand
{
    private readonly Option<string> _model = CliOptions.Choice("--model", "DiT^DH size: s (16x16x768), xl, or a tiny one for tests", "s", "s", "xl", "tiny");
    private readonly Option<string> _batches = new("--batch") { HelpName = "N[,N...]", Description = "Batch sizes to measure", DefaultValueFactory = _ => "4" };
    private readonly Option<int> _steps = new("--steps") { HelpName = "N", Description = "Measured steps per batch size", DefaultValueFactory = _ => 3 };
    private readonly Option<int> _warmup = new("--warmup") { HelpName = "N", Description = "Unmeasured steps first", DefaultValueFactory = _ => 1 };
    private readonly Option<string> _precision = CliOptions.Choice("--precision", "Training precision", "fp32", "fp32", "bf16");
    private readonly Option<string> _device = new("--device") { HelpName = "cpu|cuda[:n]", Description = "Device to run on [default: cuda when available, else cpu]" };
    private readonly Option<int?> _matmulSize = new("--matmul-size") { HelpName = "N", Description = "Size of the square matmul that measures the peak [default: 8192 on CUDA, 2048 on CPU]" };
    private readonly Option<int> _seed = new("--seed") { HelpName = "S", Description = "Seed of the weights and the data", DefaultValueFactory = _ => 0 };
    private readonly Option<bool> _profile = new("--profile") { Description = "Instead, split a training step at the first batch size into phases and time the blocks' ops (per category) and modules" };
    private readonly Option<bool> _compareKernels = new("--compare-kernels") { Description = "Instead, time the fused SiLU-gate and RMSNorm autograd nodes against the composed graphs, alternating, at the head's shapes and the first batch size (--steps pairs, median)" };
    private readonly Option<bool> _json = CliOptions.Json();

    public BenchModelCommand() =>
        Command = new Command("model", "Benchmark DiT^DH training and sampling throughput and model-FLOPs utilisation")
        {
            _model, _batches, _steps, _warmup, _precision, _device, _matmulSize, _seed, _profile, _compareKernels, _json,
        };

    public string Name => "bench model";

    public Command Command { get; }

    public Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var json = parsed.GetValue(_json);
        var profile = parsed.GetValue(_profile);
        var model = ParseModel(parsed.GetRequiredValue(_model));
        var batches = ParseBatches(parsed.GetRequiredValue(_batches));
        var steps = parsed.GetValue(_steps);
        var warmup = parsed.GetValue(_warmup);
        var precision = parsed.GetRequiredValue(_precision) == "bf16" ? ComputePrecision.BFloat16 : ComputePrecision.Float32;
        var deviceName = parsed.GetValue(_device) ?? (cuda.is_available() ? "cuda" : "cpu");
        Device target;
        try
        {
            target = device(deviceName);
        }
        catch (Exception exception) when (exception is ArgumentException or InvalidOperationException)
        {
            throw new UsageException($"--device '{deviceName}' is not usable: {exception.Message}");
        }
        var matmulSize = parsed.GetValue(_matmulSize) ?? (target.type == DeviceType.CUDA ? 8192 : 2048);
        var seed = parsed.GetValue(_seed);
        if (steps < 1) throw new UsageException($"--steps must be at least 1, got {steps}");
        if (warmup < 0) throw new UsageException($"--warmup must not be negative, got {warmup}");
        if (matmulSize < 1) throw new UsageException($"--matmul-size must be positive, got {matmulSize}");

        if (parsed.GetValue(_compareKernels))
        {
            var comparisons = KernelComparisons.Run(model, batches[0], Math.Max(steps, 9), target, json ? null : line => output.WriteLine(line));
            if (json) output.WriteLine(JsonSerializer.Serialize(comparisons, new JsonSerializerOptions { WriteIndented = true }));
            return Task.FromResult(0);
        }
        if (profile)
        {
            var stepProfile = Stage2StepProfiler.Run(model, batches[0], steps, target, precision, json ? null : line => output.WriteLine(line));
            if (json) output.WriteLine(JsonSerializer.Serialize(stepProfile, new JsonSerializerOptions { WriteIndented = true }));
            else output.WriteLine($"threads {stepProfile.Threads}, interop threads {stepProfile.InteropThreads}");
            return Task.FromResult(0);
        }
        var settings = new ModelBenchmarkSettings(model, batches, steps, warmup, precision, target, matmulSize, seed);
        var report = Stage2ModelBenchmark.Run(settings, json ? null : line => output.WriteLine(line));
        if (json)
            output.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        else
            PrintTable(report, output);
        return Task.FromResult(0);
    }

    private static DiTwDDTHeadOptions ParseModel(string name) => name switch
    {
        "s" => DiTwDDTHeadOptions.S,
        "xl" => DiTwDDTHeadOptions.XL,
        "tiny" => new DiTwDDTHeadOptions
        {
            InputSize = 4, InChannels = 8, HiddenSize = new(64, 96), Depth = new(2, 1), NumHeads = new(4, 4), NumClasses = 10,
        },
        _ => throw new UsageException($"--model expects s, xl or tiny, got '{name}'"),
    };

    private static List<int> ParseBatches(string text)
    {
        var batches = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var batch) || batch < 1)
                throw new UsageException($"--batch expects positive integers separated by commas, got '{text}'");
            batches.Add(batch);
        }
        return batches.Count > 0 ? batches : throw new UsageException("--batch needs at least one batch size");
    }

    private static void PrintTable(ModelBenchmarkReport report, TextWriter output)
    {
        var invariant = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(invariant,
            $"device {report.Device}, {report.Precision}, {report.Parameters / 1e6:F1} M parameters, {report.ForwardGflopsPerSample:F2} GFLOP per sample forward"));
        output.WriteLine(string.Create(invariant,
            $"matmul peak {report.MatmulPeak.GflopsPerSecond:F1} GFLOP/s ({report.MatmulPeak.Size}x{report.MatmulPeak.Size} {report.MatmulPeak.Describe()})"));
        output.WriteLine(string.Create(invariant,
            $"every FLOP at the matmul peak (the bound of any framework on this BLAS): {string.Join(", ", report.Batches.Select(b => $"{b.TrainSecondsPerStepAtMatmulPeak:F1} s/step at batch {b.BatchSize}"))}"));
        if (report.CpuFmaPeak is { } fma)
            output.WriteLine(string.Create(invariant,
                $"fp32 FMA ceiling {fma.GflopsPerSecond:F1} GFLOP/s ({fma.VectorBits}-bit FMAs) on {fma.Threads} threads: no fp32 training step can beat {string.Join(", ", report.Batches.Select(b => $"{b.TrainSecondsPerStepAtFmaPeak:F1} s at batch {b.BatchSize}"))}"));
        output.WriteLine($"{"batch",6} {"train steps/s",14} {"s/step",8} {"samples/s",10} {"train MFU",10} {"fwd passes/s",13} {"fwd MFU",8} {"loss",8}");
        foreach (var row in report.Batches)
            output.WriteLine(string.Create(invariant,
                $"{row.BatchSize,6} {row.TrainStepsPerSecond,14:F3} {1 / row.TrainStepsPerSecond,8:F2} {row.TrainSamplesPerSecond,10:F2} {row.TrainModelFlopsUtilisation,10:P1} {row.SamplingForwardPassesPerSecond,13:F3} {row.SamplingModelFlopsUtilisation,8:P1} {row.LastTrainingLoss,8:F4}"));
    }
}
