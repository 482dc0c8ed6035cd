using System.Diagnostics;
using RAE.Configuration;
using RAE.Models.Nn;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Discriminator;
using RAE.Models.Stage1.Losses;
using RAE.Models.Training;
using static TorchSharp.torch;

namespace RAE.Models.Benchmarks;

/// <summary>
/// One mode of <see cref="Stage1DecoderBenchmark"/>: wall seconds per step, steps and images per second, the decoder's MFU,
/// and the process's CPU seconds per step (all threads; on a shared machine wall time grows with the load, CPU time much less).
/// </summary>
public sealed record Stage1StepMeasurement(string Mode, double SecondsPerStep, double StepsPerSecond, double ImagesPerSecond,
    double DecoderTflopPerStep, double DecoderMfu, double CpuSecondsPerStep);

public sealed record Stage1BenchmarkReport(string Decoder, long DecoderParameters, int Tokens, int Batch, int Threads, string Precision,
    MatmulPeak MatmulPeak, IReadOnlyList<Stage1StepMeasurement> Modes);

/// <summary>
/// Stage 1 training throughput (benchmark only): one rank's step of <see cref="Stage1DataParallelStep"/> on random latents
/// (the frozen encoder's forward is left out) with a decoder of the given size, L1 + the offline ResNet18 perceptual loss,
/// without and with the GAN branch (the resnet18-heads discriminator at 224 px, or the image size if smaller: the adaptive weight, the generator's GAN loss
/// and one discriminator update). MFU counts the decoder's FLOPs only (6 x parameters x tokens x batch, plus attention)
/// against the matmul peak measured in the decoder's compute type (fp32, or bf16 with <c>precision</c> bf16, which runs the
/// decoder's matmuls as <see cref="Stage1DataParallelStep"/> does under training.precision: bf16): the frozen ResNet18 passes
/// are extra work it does not credit.
/// </summary>
public static class Stage1DecoderBenchmark
{
    public static Stage1BenchmarkReport Run(DecoderConfig architecture, int batch, int steps, int warmup, Device device, long matmulSize,
        ComputePrecision precision = ComputePrecision.Float32, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        if (batch < 1 || steps < 1 || warmup < 0) throw new ArgumentException("batch and steps must be >= 1, warmup >= 0");
        var peak = Stage2ModelBenchmark.MeasureMatmulPeak(matmulSize, precision.ScalarType(), device);
        progress?.Invoke($"{peak.Describe()} matmul peak {peak.GflopsPerSecond:F0} GFLOP/s ({matmulSize}^3)");
        var tokens = architecture.GridSize * architecture.GridSize;
        var modes = new List<Stage1StepMeasurement>();
        long parameters = 0;
        foreach (var gan in new[] { false, true })
        {
            var (measurement, count) = Measure(architecture, batch, steps, warmup, device, tokens, gan, peak, precision);
            parameters = count;
            modes.Add(measurement);
            progress?.Invoke($"{measurement.Mode}: {measurement.SecondsPerStep:F3} s/step ({measurement.CpuSecondsPerStep:F3} CPU s/step), "
                + $"{measurement.ImagesPerSecond:F2} img/s, decoder MFU {measurement.DecoderMfu:P1}");
        }
        return new Stage1BenchmarkReport($"{architecture.DecoderNumHiddenLayers} layers x {architecture.DecoderHiddenSize}", parameters, tokens, batch,
            get_num_threads(), precision == ComputePrecision.BFloat16 ? "bf16" : "fp32", peak, modes);
    }

    private static (Stage1StepMeasurement, long) Measure(DecoderConfig architecture, int batch, int steps, int warmup, Device device, int tokens,
        bool gan, MatmulPeak peak, ComputePrecision precision)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(0, CPU);
        var decoder = new GeneralDecoder(architecture, device, generator);
        using var rae = RepresentationAutoencoder.ForDecoding(decoder, [0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f], null,
            new RaeOptions(DecoderPatchSize: architecture.PatchSize));
        var loss = new GanLossConfig { DiscStart = 0, DiscUpdStart = 0, DiscWeight = gan ? 0.75 : 0, PerceptualWeight = 1.0 };
        var constant = new Stage1OptimizerSettings(new LearningRateSchedule(1e-4, 1e-4, 0, 0, DecayShape.Linear, false));
        using var perceptual = ResNet18PerceptualLoss.Load(device: device);
        using var discriminator = gan ? ResNetHeadsDiscriminator.Create(new ResNetHeadsDiscriminatorOptions(Math.Min(224, architecture.ImageSize)), generator).MoveTo(device) : null;
        var stage1Discriminator = discriminator is null ? null : new Stage1Discriminator(discriminator, discriminator.Classify);
        using var step = new Stage1DataParallelStep(rae, new Stage1LossSchedule(loss, 1), constant, new DiffAug(1.0, 0.0), perceptual,
            stage1Discriminator, gan ? constant : null, null, 0.9999, 0, precision);
        var side = (long)Math.Sqrt(tokens);
        var latent = randn([batch, architecture.HiddenSize, side, side], generator: generator).to(device);
        var images = rand([batch, 3, architecture.ImageSize, architecture.ImageSize], generator: generator).to(device);
        var draws = new GeneratorUniformDraws(generator);
        var clock = new Stopwatch();
        using var process = Process.GetCurrentProcess();
        var cpuAtStart = TimeSpan.Zero;
        for (var i = 0; i < warmup + steps; i++)
        {
            if (i == warmup)
            {
                process.Refresh();
                cpuAtStart = process.TotalProcessorTime;
                clock.Start();
            }
            using var stepScope = NewDisposeScope();
            var pass = step.ForwardGenerator(images, latent, draws);
            var weight = pass.UsesGan ? step.AdaptiveWeightOf(step.LastLayerGradients(pass)) : 0;
            step.ApplyDecoder(step.DecoderGradients(pass, weight));
            if (gan)
            {
                var fakes = step.Fakes(latent);
                step.ApplyDiscriminator(step.DiscriminatorGradients(fakes, images * 2.0 - 1.0, draws).Gradients);
            }
        }
        var seconds = clock.Elapsed.TotalSeconds / steps;
        process.Refresh();
        var cpuSeconds = (process.TotalProcessorTime - cpuAtStart).TotalSeconds / steps;
        var parameters = decoder.parameters().Sum(p => p.numel());
        var layers = architecture.DecoderNumHiddenLayers;
        var width = architecture.DecoderHiddenSize;
        // Dense layers: 2 FLOPs per multiply-add, x3 for forward and backward; attention: QK^T and AV, 4·T²·D per layer forward.
        var flop = 6.0 * parameters * (tokens + 1) * batch + 3.0 * 4.0 * layers * Math.Pow(tokens + 1, 2) * width * batch;
        var measurement = new Stage1StepMeasurement(gan ? "L1 + perceptual + GAN (1 disc update)" : "L1 + perceptual", seconds, 1 / seconds,
            batch / seconds, flop / 1e12, flop / seconds / (peak.GflopsPerSecond * 1e9), cpuSeconds);
        return (measurement, parameters);
    }
}
