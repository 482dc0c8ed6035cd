using RAE.Configuration;
using System.Diagnostics;
using RAE.Models.Nn;
using RAE.Models.Runtime;
using RAE.Models.Stage2;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Benchmarks;

public sealed record ModelBenchmarkSettings(
    DiTwDDTHeadOptions Model,
    IReadOnlyList<int> BatchSizes,
    int Steps,
    int WarmupSteps,
    /// <summary>bf16: the trainer's and sampler's autocast (<see cref="Autocast"/>) on fp32 parameters and AdamW.</summary>
    ComputePrecision Precision,
    Device Device,
    long MatmulSize,
    long Seed = 0);

/// <summary>A measured matmul rate; <paramref name="Kernels"/> says how the product ran when not on the dtype's own kernels.</summary>
public sealed record MatmulPeak(long Size, string DataType, double GflopsPerSecond, string? Kernels = null)
{
    /// <summary>The dtype, and how it ran when emulated (e.g. "BFloat16 emulated on Float32 kernels").</summary>
    public string Describe() => Kernels is null ? DataType : $"{DataType} {Kernels}";
}

public sealed record BatchBenchmark(
    int BatchSize,
    double TrainStepsPerSecond,
    double TrainSamplesPerSecond,
    double TrainModelGflopsPerSecond,
    double TrainModelFlopsUtilisation,
    double SamplingForwardPassesPerSecond,
    double SamplingModelGflopsPerSecond,
    double SamplingModelFlopsUtilisation,
    double LastTrainingLoss,
    double TrainSecondsPerStepAtMatmulPeak,
    double? TrainSecondsPerStepAtFmaPeak);

public sealed record ModelBenchmarkReport(
    string Device,
    string Precision,
    long Parameters,
    double ForwardGflopsPerSample,
    MatmulPeak MatmulPeak,
    CpuFmaPeak? CpuFmaPeak,
    IReadOnlyList<BatchBenchmark> Batches);

/// <summary>
/// Measures DiT^DH training steps/s (forward, MSE velocity loss on the linear path, backward, torch AdamW) and sampling
/// forward passes/s, plus the dense-matmul peak of the same device and dtype, and reports model-FLOPs utilisation
/// (<see cref="ModelFlops"/> / measured peak). On a CPU it also measures the cores' fp32 FMA ceiling
/// (<see cref="CpuFmaPeakProbe"/>) and states the training step time that ceiling allows: the floor no implementation can
/// beat on this machine. Nothing is assumed: every rate is timed in this run.
/// </summary>
public static class Stage2ModelBenchmark
{
    public static ModelBenchmarkReport Run(ModelBenchmarkSettings settings, Action<string>? progress = null)
    {
        if (settings.Steps < 1) throw new ArgumentException($"steps must be at least 1, got {settings.Steps}");
        if (settings.WarmupSteps < 0) throw new ArgumentException($"warmup steps must not be negative, got {settings.WarmupSteps}");
        if (settings.BatchSizes.Count == 0 || settings.BatchSizes.Any(b => b < 1))
            throw new ArgumentException($"batch sizes must be positive, got [{string.Join(", ", settings.BatchSizes)}]");
        var computeType = settings.Precision.ScalarType();
        var peak = MeasureMatmulPeak(settings.MatmulSize, computeType, settings.Device);
        progress?.Invoke($"matmul peak {peak.GflopsPerSecond:F1} GFLOP/s ({peak.Size}x{peak.Size} {peak.Describe()})");
        var fmaPeak = settings.Device.type == DeviceType.CPU && computeType == ScalarType.Float32 ? CpuFmaPeakProbe.Measure(get_num_threads()) : null;
        if (fmaPeak is not null) progress?.Invoke($"fp32 FMA ceiling {fmaPeak.GflopsPerSecond:F1} GFLOP/s ({fmaPeak.Threads} threads)");

        var generator = new Generator((ulong)settings.Seed, device("cpu"));
        using var master = new DiTwDDTHead(settings.Model, generator);
        master.to(settings.Device);
        var trainable = master.parameters().Where(p => p.requires_grad).ToList();
        using var optimizer = Training.TrainingOptimizer.CreateAdamW(trainable, lr: 1e-4, beta1: 0.9, beta2: 0.95, weightDecay: 0);
        var forwardFlops = ModelFlops.ForwardPerSample(settings.Model);
        var results = new List<BatchBenchmark>();
        foreach (var batch in settings.BatchSizes)
        {
            var (stepsPerSecond, loss) = TimeTraining(master, optimizer, settings, batch);
            var forwardsPerSecond = TimeSampling(master, settings, batch);
            var trainFlops = 3 * forwardFlops * batch * stepsPerSecond;
            var sampleFlops = forwardFlops * batch * forwardsPerSecond;
            results.Add(new BatchBenchmark(batch, stepsPerSecond, stepsPerSecond * batch, trainFlops / 1e9, trainFlops / 1e9 / peak.GflopsPerSecond,
                forwardsPerSecond, sampleFlops / 1e9, sampleFlops / 1e9 / peak.GflopsPerSecond, loss,
                3 * forwardFlops * batch / 1e9 / peak.GflopsPerSecond,
                fmaPeak is null ? null : 3 * forwardFlops * batch / 1e9 / fmaPeak.GflopsPerSecond));
            progress?.Invoke($"batch {batch}: {stepsPerSecond:F3} train steps/s, {forwardsPerSecond:F3} forward passes/s");
        }
        var parameterCount = master.parameters().Sum(p => p.numel());
        return new ModelBenchmarkReport(settings.Device.ToString(), settings.Precision.Name(),
            parameterCount, forwardFlops / 1e9, peak, fmaPeak, results);
    }

    /// <summary>Best rate of n×n matmuls (2n³ FLOPs each) timed for about two seconds (at least one, at most 20) after a warm-up.</summary>
    public static MatmulPeak MeasureMatmulPeak(long size, ScalarType dataType, Device device)
    {
        using var scope = NewDisposeScope();
        // An emulated bf16 product is an fp32 one on bf16-rounded values: measure what the model runs.
        var emulated = dataType == ScalarType.BFloat16 && Bf16Gemm.EmulatesOn(device);
        var storage = emulated ? ScalarType.Float32 : dataType;
        var a = randn(size, size, device: device).to(dataType).to(storage);
        var b = randn(size, size, device: device).to(dataType).to(storage);
        using (a.matmul(b)) Synchronize(device);
        var best = 0.0;
        var total = Stopwatch.StartNew();
        for (var repeat = 0; repeat < 20 && (repeat == 0 || total.Elapsed.TotalSeconds < 2); repeat++)
        {
            var watch = Stopwatch.StartNew();
            using (a.matmul(b)) Synchronize(device);
            best = Math.Max(best, 2.0 * size * size * size / watch.Elapsed.TotalSeconds / 1e9);
        }
        return new MatmulPeak(size, dataType.ToString(), best, emulated ? "emulated on Float32 kernels" : null);
    }

    private static (double StepsPerSecond, double Loss) TimeTraining(DiTwDDTHead model, optim.Optimizer optimizer,
        ModelBenchmarkSettings settings, int batch)
    {
        model.train();
        var data = new Generator((ulong)(settings.Seed + batch), device("cpu"));
        double loss = double.NaN;
        Stopwatch? watch = null;
        for (var step = 0; step < settings.WarmupSteps + settings.Steps; step++)
        {
            if (step == settings.WarmupSteps)
            {
                Synchronize(settings.Device);
                watch = Stopwatch.StartNew();
            }
            using var scope = NewDisposeScope();
            var (noisy, t, y, target) = TrainingBatch(settings, batch, data);
            // Gradients are dropped, not zeroed, as the trainer and PyTorch's optimizer.zero_grad() (set_to_none) do.
            model.zero_grad(set_to_none: true);
            using (Autocast.Enter(settings.Precision))
            {
                using var lossTensor = (model.forward(noisy, t, y) - target).pow(2).mean();
                lossTensor.backward();
                if (step == settings.WarmupSteps + settings.Steps - 1) loss = lossTensor.item<float>();
            }
            optimizer.step();
        }
        Synchronize(settings.Device);
        return (settings.Steps / watch!.Elapsed.TotalSeconds, loss);
    }

    private static double TimeSampling(DiTwDDTHead model, ModelBenchmarkSettings settings, int batch)
    {
        model.eval();
        using var guard = no_grad();
        // As the sampling pipeline: one scope for the whole run, so each weight is cast (and padded) once.
        using var autocast = Autocast.Enter(settings.Precision, cacheWeights: true);
        var data = new Generator((ulong)(settings.Seed + 1000 + batch), device("cpu"));
        Stopwatch? watch = null;
        for (var step = 0; step < settings.WarmupSteps + settings.Steps; step++)
        {
            if (step == settings.WarmupSteps)
            {
                Synchronize(settings.Device);
                watch = Stopwatch.StartNew();
            }
            using var scope = NewDisposeScope();
            var (noisy, t, y, _) = TrainingBatch(settings, batch, data);
            model.forward(noisy, t, y);
        }
        Synchronize(settings.Device);
        return settings.Steps / watch!.Elapsed.TotalSeconds;
    }

    /// <summary>x_t = (1 − t)·x + t·ε with velocity target ε − x (reversed-time linear path); data drawn on the CPU.</summary>
    private static (Tensor Noisy, Tensor T, Tensor Y, Tensor Target) TrainingBatch(ModelBenchmarkSettings settings, int batch, Generator generator)
    {
        var options = settings.Model;
        long[] shape = [batch, options.InChannels, options.InputSize, options.InputSize];
        var x = randn(shape, generator: generator).to(settings.Device);
        var noise = randn(shape, generator: generator).to(settings.Device);
        var t = rand([batch], generator: generator).to(settings.Device);
        var y = randint(options.NumClasses, [batch], generator: generator).to(settings.Device);
        var tView = t.view(-1, 1, 1, 1);
        return ((1 - tView) * x + tView * noise, t, y, noise - x);
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }
}
