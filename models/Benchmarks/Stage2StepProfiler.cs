using System.Diagnostics;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Benchmarks;

/// <summary>Mean seconds of one phase of an fp32 training step.</summary>
public sealed record PhaseTiming(string Phase, double Seconds);

/// <summary>
/// Forward and backward seconds of one building block at the shapes DiT^DH uses, per instance, and how many instances a
/// training step runs (<paramref name="Count"/>); <paramref name="MatmulGflop"/> is its forward matmul work.
/// </summary>
public sealed record ComponentTiming(string Name, int Count, double ForwardSeconds, double BackwardSeconds, double MatmulGflop);

public sealed record StepProfile(int Threads, int InteropThreads, int BatchSize, IReadOnlyList<PhaseTiming> Phases, IReadOnlyList<ComponentTiming> Components);

/// <summary>
/// Where the time of a DiT^DH training step goes: the step split into zero_grad / forward / loss / backward / AdamW, and
/// the encoder and head building blocks (adaLN, norms, modulation, attention parts, RoPE, SwiGLU) timed alone on the
/// step's shapes with Stopwatch, each forward followed by a backward from a fixed random gradient.
/// </summary>
public static class Stage2StepProfiler
{
    public static StepProfile Run(DiTwDDTHeadOptions options, int batch, int steps, Device device, Action<string>? progress = null)
    {
        if (steps < 1) throw new ArgumentException($"profile steps must be at least 1, got {steps}");
        var phases = ProfilePhases(options, batch, steps, device);
        foreach (var phase in phases) progress?.Invoke($"phase {phase.Phase,-20} {phase.Seconds,8:F3} s");
        var components = new List<ComponentTiming>();
        var tokens = (long)Math.Pow(options.InputSize / options.PatchSize.Encoder, 2);
        var encoder = BlockShape.Of(options.HiddenSize.Encoder, options.NumHeads.Encoder, options);
        var head = BlockShape.Of(options.HiddenSize.Decoder, options.NumHeads.Decoder, options);
        foreach (var timing in ProfileBlock("encoder", encoder, batch, tokens, perTokenCondition: false, options.Depth.Encoder, device)
                     .Concat(ProfileBlock("head", head, batch, tokens, perTokenCondition: true, options.Depth.Decoder, device)))
        {
            progress?.Invoke($"{timing.Name,-22} x{timing.Count,-3} fwd {timing.ForwardSeconds * 1e3,9:F1} ms  bwd {timing.BackwardSeconds * 1e3,9:F1} ms");
            components.Add(timing);
        }
        return new StepProfile(get_num_threads(), get_num_interop_threads(), batch, phases, components);
    }

    private static List<PhaseTiming> ProfilePhases(DiTwDDTHeadOptions options, int batch, int steps, Device device)
    {
        var generator = new Generator(0, torch.device("cpu"));
        using var model = new DiTwDDTHead(options, generator);
        model.to(device);
        model.train();
        using var optimizer = Training.TrainingOptimizer.CreateAdamW(model.parameters(), lr: 1e-4, beta1: 0.9, beta2: 0.95);
        var names = new[] { "zero_grad", "forward", "loss", "backward", "adamw" };
        // Steps alternate between clearing the gradients in place (optimizer.zero_grad) and dropping them
        // (module.zero_grad, set_to_none) so that both see the same machine load; the first step of each is warm-up.
        var modes = new[] { "zeroed", "none" };
        var totals = new double[modes.Length, names.Length];
        for (var step = 0; step < 2 * (steps + 1); step++)
        {
            var mode = step % 2;
            using var scope = NewDisposeScope();
            long[] shape = [batch, options.InChannels, options.InputSize, options.InputSize];
            var x = randn(shape, generator: generator).to(device);
            var target = randn(shape, generator: generator).to(device);
            var t = rand([batch], generator: generator).to(device);
            var y = randint(options.NumClasses, [batch], generator: generator).to(device);
            var seconds = new double[names.Length];
            var watch = Stopwatch.StartNew();
            if (mode == 0) optimizer.zero_grad();
            else model.zero_grad(set_to_none: true);
            seconds[0] = Lap(watch, device);
            var velocity = model.forward(x, t, y);
            seconds[1] = Lap(watch, device);
            var loss = (velocity - target).pow(2).mean();
            seconds[2] = Lap(watch, device);
            loss.backward();
            seconds[3] = Lap(watch, device);
            optimizer.step();
            seconds[4] = Lap(watch, device);
            if (step < 2) continue;
            for (var i = 0; i < names.Length; i++) totals[mode, i] += seconds[i];
        }
        var phases = new List<PhaseTiming>();
        for (var mode = 0; mode < modes.Length; mode++)
        {
            var stepSeconds = 0.0;
            for (var i = 0; i < names.Length; i++)
            {
                phases.Add(new PhaseTiming($"{names[i]} ({modes[mode]})", totals[mode, i] / steps));
                stepSeconds += totals[mode, i] / steps;
            }
            phases.Add(new PhaseTiming($"step ({modes[mode]})", stepSeconds));
        }
        return phases;
    }

    private sealed record BlockShape(long Width, long Heads, long MlpHidden, bool WithoutShift)
    {
        public static BlockShape Of(long width, long heads, DiTwDDTHeadOptions options) =>
            new(width, heads, SwiGLUFFN.BlockHiddenSize(width, options.MlpRatio), options.WoShift);

        public long HeadDim => Width / Heads;
    }

    private static List<ComponentTiming> ProfileBlock(string prefix, BlockShape shape, int batch, long tokens, bool perTokenCondition,
        int count, Device device)
    {
        using var scope = NewDisposeScope();
        var width = shape.Width;
        var rows = (double)batch * tokens;
        var conditionRows = perTokenCondition ? rows : batch;
        var modulationWidth = (shape.WithoutShift ? 4 : 6) * width;
        var gridSide = (long)Math.Round(Math.Sqrt(tokens));
        var x = randn(batch, tokens, width, device: device);
        var condition = randn(batch, perTokenCondition ? tokens : 1, width, device: device);
        var adaLN = nn.Sequential(("0", nn.SiLU()), ("1", nn.Linear(width, modulationWidth))).to(device);
        var norm = new RMSNorm(width, device: device);
        var attention = new NormAttention(width, shape.Heads).to(device);
        var rope = new VisionRotaryEmbeddingFast(shape.HeadDim / 2, gridSide, device: device);
        var mlp = new SwiGLUFFN(width, shape.MlpHidden).to(device);
        var block = new LightningDDTBlock(width, shape.Heads, 4.0, useQkNorm: false, useSwiGlu: true, useRmsNorm: true, shape.WithoutShift).to(device);
        var scale = randn(batch, perTokenCondition ? tokens : 1, width, device: device);
        var shift = randn(batch, perTokenCondition ? tokens : 1, width, device: device);
        var heads = randn(batch, shape.Heads, tokens, shape.HeadDim, device: device);
        var qkvWeight = randn(3 * width, width, device: device) * 0.02;
        var mlpWeight = randn(2 * shape.MlpHidden, width, device: device) * 0.02;
        var attentionFlops = 4.0 * batch * tokens * tokens * width;
        var timings = new List<ComponentTiming>();

        timings.Add(Time($"{prefix} adaLN", count, device, [condition], inputs => adaLN.forward(inputs[0]), 2 * conditionRows * width * modulationWidth));
        timings.Add(Time($"{prefix} rmsnorm", 2 * count, device, [x], inputs => norm.forward(inputs[0]), 0));
        timings.Add(Time($"{prefix} modulate", 2 * count, device, [x, shift, scale],
            inputs => Modulation.Modulate(inputs[0], inputs[1], inputs[2]), 0));
        timings.Add(Time($"{prefix} gate+residual", 2 * count, device, [x, scale, shift],
            inputs => inputs[0] + Modulation.Gate(inputs[1], inputs[2]), 0));
        timings.Add(Time($"{prefix} qkv linear", count, device, [x], inputs => nn.functional.linear(inputs[0], qkvWeight), 2 * rows * width * 3 * width));
        timings.Add(Time($"{prefix} rope q,k", 2 * count, device, [heads], inputs => rope.forward(inputs[0]), 0));
        timings.Add(Time($"{prefix} sdpa", count, device, [heads, heads.clone(), heads.clone()],
            inputs => nn.functional.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2]), attentionFlops));
        timings.Add(Time($"{prefix} attention", count, device, [x], inputs => attention.forward(inputs[0], rope),
            2 * rows * width * 4 * width + attentionFlops));
        timings.Add(Time($"{prefix} w12 linear", count, device, [x], inputs => nn.functional.linear(inputs[0], mlpWeight),
            2 * rows * width * 2 * shape.MlpHidden));
        timings.Add(Time($"{prefix} swiglu", count, device, [x], inputs => mlp.forward(inputs[0]), 2 * rows * width * 3 * shape.MlpHidden));
        timings.Add(Time($"{prefix} block", count, device, [x, condition], inputs => block.forward(inputs[0], inputs[1], rope),
            2 * rows * width * (4 * width + 3 * shape.MlpHidden) + attentionFlops + 2 * conditionRows * width * modulationWidth));
        return timings;
    }

    /// <summary>Best of three forward and backward times (after one warm-up) with every input requiring a gradient.</summary>
    private static ComponentTiming Time(string name, int count, Device device, Tensor[] sources, Func<Tensor[], Tensor> forward, double matmulFlops)
    {
        var bestForward = double.MaxValue;
        var bestBackward = double.MaxValue;
        for (var repeat = 0; repeat < 4; repeat++)
        {
            using var scope = NewDisposeScope();
            var inputs = sources.Select(s => s.detach().requires_grad_(true)).ToArray();
            var watch = Stopwatch.StartNew();
            var output = forward(inputs);
            var forwardSeconds = Lap(watch, device);
            var gradient = randn_like(output);
            watch.Restart();
            output.backward([gradient]);
            var backwardSeconds = Lap(watch, device);
            if (repeat == 0) continue;
            bestForward = Math.Min(bestForward, forwardSeconds);
            bestBackward = Math.Min(bestBackward, backwardSeconds);
        }
        return new ComponentTiming(name, count, bestForward, bestBackward, matmulFlops / 1e9);
    }

    private static double Lap(Stopwatch watch, Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
        var seconds = watch.Elapsed.TotalSeconds;
        watch.Restart();
        return seconds;
    }
}
