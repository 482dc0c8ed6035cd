using System.Diagnostics;
using System.Text.Json.Serialization;
using RAE.Configuration;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Benchmarks;

/// <summary>Mean seconds of one phase of a training step (or of a sampling forward pass).</summary>
public sealed record PhaseTiming(string Phase, double Seconds);

/// <summary>What kind of work an op is, for the per-category totals of <see cref="StepProfile"/>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OpCategory>))]
public enum OpCategory
{
    Matmul,
    Attention,
    Norm,
    Elementwise,
    Layout,
    /// <summary>A whole module (attention, SwiGLU, block): its time includes its ops, so it is left out of the category totals.</summary>
    Module,
}

/// <summary>
/// Forward and backward seconds of one op or module at the shapes DiT^DH uses, per instance, and how many instances a
/// training step runs (<paramref name="Count"/>); <paramref name="MatmulGflop"/> is its forward matmul work.
/// </summary>
public sealed record ComponentTiming(string Name, OpCategory Category, int Count, double ForwardSeconds, double BackwardSeconds, double MatmulGflop)
{
    public double StepSeconds => Count * (ForwardSeconds + BackwardSeconds);
}

/// <summary>Seconds per training step spent in one category (its ops x their counts), forward and backward.</summary>
public sealed record CategoryTiming(OpCategory Category, double ForwardSeconds, double BackwardSeconds);

public sealed record StepProfile(int Threads, int InteropThreads, int BatchSize, string Precision, IReadOnlyList<PhaseTiming> Phases,
    IReadOnlyList<ComponentTiming> Components, IReadOnlyList<CategoryTiming> Categories);

/// <summary>
/// Where the time of a DiT^DH training step goes, in the precision the trainer would use (bf16: <see cref="Autocast"/>
/// on fp32 parameters): the step split into zero_grad / forward / loss / backward / AdamW plus a sampling forward pass,
/// and the encoder and head ops (matmuls, attention, norms, elementwise modulation and activation, layout copies) and
/// modules timed alone on the step's shapes with Stopwatch, each forward followed by a backward from a fixed random
/// gradient. The op times summed per category, times their count per step, show what is not matmul.
/// </summary>
public static class Stage2StepProfiler
{
    public static StepProfile Run(DiTwDDTHeadOptions options, int batch, int steps, Device device, ComputePrecision precision = ComputePrecision.Float32,
        Action<string>? progress = null)
    {
        if (steps < 1) throw new ArgumentException($"profile steps must be at least 1, got {steps}");
        var phases = ProfilePhases(options, batch, steps, device, precision);
        foreach (var phase in phases) progress?.Invoke($"phase {phase.Phase,-24} {phase.Seconds,8:F3} s");
        var components = new List<ComponentTiming>();
        var tokens = (long)Math.Pow(options.InputSize / options.PatchSize.Encoder, 2);
        var encoder = BlockShape.Of(options.HiddenSize.Encoder, options.NumHeads.Encoder, options);
        var head = BlockShape.Of(options.HiddenSize.Decoder, options.NumHeads.Decoder, options);
        foreach (var timing in ProfileBlock("encoder", encoder, batch, tokens, perTokenCondition: false, options.Depth.Encoder, device, precision)
                     .Concat(ProfileBlock("head", head, batch, tokens, perTokenCondition: true, options.Depth.Decoder, device, precision)))
        {
            progress?.Invoke($"{timing.Name,-24} {timing.Category,-11} x{timing.Count,-3} fwd {timing.ForwardSeconds * 1e3,9:F1} ms  bwd {timing.BackwardSeconds * 1e3,9:F1} ms  per step {timing.StepSeconds,7:F3} s");
            components.Add(timing);
        }
        var categories = components.Where(c => c.Category != OpCategory.Module).GroupBy(c => c.Category)
            .Select(g => new CategoryTiming(g.Key, g.Sum(c => c.Count * c.ForwardSeconds), g.Sum(c => c.Count * c.BackwardSeconds)))
            .OrderByDescending(c => c.ForwardSeconds + c.BackwardSeconds).ToList();
        foreach (var category in categories)
            progress?.Invoke($"category {category.Category,-12} fwd {category.ForwardSeconds,7:F3} s  bwd {category.BackwardSeconds,7:F3} s per step (blocks' ops timed alone)");
        return new StepProfile(get_num_threads(), get_num_interop_threads(), batch, precision.Name(), phases, components, categories);
    }

private static List<PhaseTiming> ProfilePhases(DiTwDDTHeadOptions options, int batch, int steps, Device device, ComputePrecision precision)
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
            using (Autocast.Enter(precision))
            {
                var velocity = model.forward(x, t, y);
                seconds[1] = Lap(watch, device);
                var loss = (velocity - target).pow(2).mean();
                seconds[2] = Lap(watch, device);
                loss.backward();
                seconds[3] = Lap(watch, device);
            }
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
        phases.Add(new PhaseTiming("sampling forward", SamplingForwardSeconds(model, options, batch, steps, device, precision, generator)));
        return phases;
    }

    private sealed record BlockShape(long Width, long Heads, long MlpHidden, bool WithoutShift)
    {
        public static BlockShape Of(long width, long heads, DiTwDDTHeadOptions options) =>
            new(width, heads, SwiGLUFFN.BlockHiddenSize(width, options.MlpRatio), options.WoShift);

        public long HeadDim => Width / Heads;
    }

    private static List<ComponentTiming> ProfileBlock(string prefix, BlockShape shape, int batch, long tokens, bool perTokenCondition,
        int count, Device device, ComputePrecision precision)
    {
        using var scope = NewDisposeScope();
        var width = shape.Width;
        var rows = (double)batch * tokens;
        var conditionRows = perTokenCondition ? rows : batch;
        var modulationWidth = (shape.WithoutShift ? 4 : 6) * width;
        var gridSide = (long)Math.Round(Math.Sqrt(tokens));
        var compute = precision.ScalarType();
        var x = randn(batch, tokens, width, device: device);
        var condition = randn(batch, perTokenCondition ? tokens : 1, width, device: device);
        var adaLN = nn.Linear(width, modulationWidth).to(device);
        var norm = new RMSNorm(width, device: device);
        var attention = new NormAttention(width, shape.Heads).to(device);
        var rope = new VisionRotaryEmbeddingFast(shape.HeadDim / 2, gridSide, device: device);
        var mlp = new SwiGLUFFN(width, shape.MlpHidden).to(device);
        var block = new LightningDDTBlock(width, shape.Heads, 4.0, useQkNorm: false, useSwiGlu: true, useRmsNorm: true, shape.WithoutShift).to(device);
        var qkv = nn.Linear(width, 3 * width).to(device);
        var proj = nn.Linear(width, width).to(device);
        var w12 = nn.Linear(width, 2 * mlp.ComputeHiddenSize).to(device);
        var w3 = nn.Linear(mlp.ComputeHiddenSize, width).to(device);
        // The modulation chunks and projections arrive in the compute dtype, as the blocks' matmuls leave them.
        var scale = randn(batch, perTokenCondition ? tokens : 1, width, device: device).to(compute);
        var shift = randn(batch, perTokenCondition ? tokens : 1, width, device: device).to(compute);
        var projected = randn(batch, tokens, width, device: device).to(compute);
        var packed = randn(batch, tokens, 3 * width, device: device).to(compute);
        var heads = randn(batch, shape.Heads, tokens, shape.HeadDim, device: device).to(compute);
        var hidden = randn(batch, tokens, 2 * mlp.ComputeHiddenSize, device: device).to(compute);
        var attentionFlops = 4.0 * batch * tokens * tokens * width;
        var timings = new List<ComponentTiming>();
        ComponentTiming Op(string name, OpCategory category, int instances, Tensor[] inputs, Func<Tensor[], Tensor> forward, double flops) =>
            Time($"{prefix} {name}", category, instances, device, precision, inputs, forward, flops);

        timings.Add(Op("adaLN linear", OpCategory.Matmul, count, [condition], i => Autocast.Linear(adaLN, nn.functional.silu(i[0])), 2 * conditionRows * width * modulationWidth));
        timings.Add(Op("qkv linear", OpCategory.Matmul, count, [x], i => Autocast.Linear(qkv, i[0]), 2 * rows * width * 3 * width));
        timings.Add(Op("proj linear", OpCategory.Matmul, count, [projected], i => Autocast.Linear(proj, i[0]), 2 * rows * width * width));
        timings.Add(Op("w12 linear", OpCategory.Matmul, count, [x], i => Autocast.Linear(w12, i[0]), 2 * rows * width * 2 * mlp.ComputeHiddenSize));
        timings.Add(Op("w3 linear", OpCategory.Matmul, count, [hidden.slice(-1, 0, mlp.ComputeHiddenSize, 1).contiguous()],
            i => Autocast.Linear(w3, i[0]), 2 * rows * mlp.ComputeHiddenSize * width));
        timings.Add(Op("sdpa", OpCategory.Attention, count, [heads, heads.clone(), heads.clone()],
            i => nn.functional.scaled_dot_product_attention(i[0], i[1], i[2]), attentionFlops));
        timings.Add(Op("rmsnorm", OpCategory.Norm, 2 * count, [x], i => norm.forward(i[0]), 0));
        timings.Add(Op("modulate", OpCategory.Elementwise, 2 * count, [x, shift, scale], i => Modulation.Modulate(i[0], i[1], i[2]), 0));
        timings.Add(Op("gate+residual", OpCategory.Elementwise, 2 * count, [x, projected, scale], i => i[0] + Modulation.Gate(i[1], i[2]), 0));
        timings.Add(Op("rope q,k", OpCategory.Elementwise, 2 * count, [heads], i => rope.forward(i[0]).to(compute), 0));
        timings.Add(Op("silu*gate", OpCategory.Elementwise, count, [hidden], i => SiluGate.Composed(i[0]), 0));
        timings.Add(Op("qkv split+merge", OpCategory.Layout, count, [packed, heads], i =>
        {
            var split = i[0].reshape(batch, tokens, 3, shape.Heads, shape.HeadDim).permute(2, 0, 3, 1, 4);
            var merged = i[1].transpose(1, 2).reshape(batch, tokens, width);
            return merged + split[0].transpose(1, 2).reshape(batch, tokens, width);
        }, 0));
        timings.Add(Op("attention", OpCategory.Module, count, [x], i => attention.forward(i[0], rope), 2 * rows * width * 4 * width + attentionFlops));
        timings.Add(Op("swiglu", OpCategory.Module, count, [x], i => mlp.forward(i[0]), 2 * rows * width * 3 * shape.MlpHidden));
        timings.Add(Op("block", OpCategory.Module, count, [x, condition], i => block.forward(i[0], i[1], rope),
            2 * rows * width * (4 * width + 3 * shape.MlpHidden) + attentionFlops + 2 * conditionRows * width * modulationWidth));
        return timings;
    }

    /// <summary>Mean seconds of a sampling forward pass (no autograd, bf16 weights cast once) over <paramref name="steps"/> after one warm-up.</summary>
    private static double SamplingForwardSeconds(DiTwDDTHead model, DiTwDDTHeadOptions options, int batch, int steps, Device device,
        ComputePrecision precision, Generator generator)
    {
        model.eval();
        using var guard = no_grad();
        using var autocast = Autocast.Enter(precision, cacheWeights: true);
        using var scope = NewDisposeScope();
        var x = randn([batch, options.InChannels, options.InputSize, options.InputSize], generator: generator).to(device);
        var t = rand([batch], generator: generator).to(device);
        var y = randint(options.NumClasses, [batch], generator: generator).to(device);
        var total = 0.0;
        for (var pass = 0; pass <= steps; pass++)
        {
            using var passScope = NewDisposeScope();
            var watch = Stopwatch.StartNew();
            model.forward(x, t, y);
            var seconds = Lap(watch, device);
            if (pass > 0) total += seconds;
        }
        return total / steps;
    }

    /// <summary>Best of three forward and backward times (after one warm-up) with every input requiring a gradient.</summary>
    private static ComponentTiming Time(string name, OpCategory category, int count, Device device, ComputePrecision precision, Tensor[] sources,
        Func<Tensor[], Tensor> forward, double matmulFlops)
    {
        var bestForward = double.MaxValue;
        var bestBackward = double.MaxValue;
        for (var repeat = 0; repeat < 4; repeat++)
        {
            using var scope = NewDisposeScope();
            var inputs = sources.Select(s => s.detach().requires_grad_(true)).ToArray();
            var watch = Stopwatch.StartNew();
            Tensor output;
            using (Autocast.Enter(precision)) output = forward(inputs);
            var forwardSeconds = Lap(watch, device);
            var gradient = randn_like(output);
            watch.Restart();
            output.backward([gradient]);
            var backwardSeconds = Lap(watch, device);
            if (repeat == 0) continue;
            bestForward = Math.Min(bestForward, forwardSeconds);
            bestBackward = Math.Min(bestBackward, backwardSeconds);
        }
        return new ComponentTiming(name, category, count, bestForward, bestBackward, matmulFlops / 1e9);
    }

    private static double Lap(Stopwatch watch, Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
        var seconds = watch.Elapsed.TotalSeconds;
        watch.Restart();
        return seconds;
    }
}
