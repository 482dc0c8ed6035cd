using RAE.Models.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class FusedAdamWTests
{
    [Fact]
    public void FusedStepsFollowTorchAdamWWithDecayAndAChangingRate()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(7);
        // 211,001 values: several parallel chunks and a scalar tail; 37: one short chunk; float64: the tensor-op fallback.
        long[][] shapes = [[301, 701], [37], [5, 3]];
        var initial = shapes.Select((shape, i) => randn(shape, dtype: i == 2 ? float64 : float32, generator: generator)).ToList();
        var fusedParameters = initial.Select(t => new Parameter(t.clone())).ToList();
        var referenceParameters = initial.Select(t => new Parameter(t.clone())).ToList();
        using var fused = TrainingOptimizer.CreateAdamW(fusedParameters, lr: 1e-2, beta1: 0.9, beta2: 0.95, weightDecay: 0.05, eps: 1e-8);
        using var reference = optim.AdamW(referenceParameters, lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05);
        Assert.IsType<FusedAdamW>(fused);

        for (var step = 1; step <= 6; step++)
        {
            if (step == 4)
            {
                foreach (var group in fused.ParamGroups) group.LearningRate = 3e-3;
                foreach (var group in reference.ParamGroups) group.LearningRate = 3e-3;
            }
            for (var i = 0; i < shapes.Length; i++)
            {
                var gradient = randn(shapes[i], dtype: initial[i].dtype, generator: generator) * (i + 1);
                fusedParameters[i].grad = gradient.clone();
                referenceParameters[i].grad = gradient.clone();
            }
            fused.step();
            reference.step();
            Assert.Equal(2, ((FusedAdamW)fused).LastFusedCount);
            for (var i = 0; i < shapes.Length; i++)
            {
                var difference = (fusedParameters[i] - referenceParameters[i]).abs().max().to(float64).item<double>();
                Assert.True(difference < 1e-6, $"step {step}, parameter {i}: max |fused − torch| = {difference}");
                Assert.False(fusedParameters[i].equal(initial[i]).all().item<bool>(), $"parameter {i} did not move");
            }
        }

        var fusedStates = fused.state_dict().State.Cast<AdamW.State>().ToList();
        var referenceStates = reference.state_dict().State.Cast<AdamW.State>().ToList();
        for (var i = 0; i < shapes.Length; i++)
        {
            Assert.Equal(6, fusedStates[i].step);
            Assert.True(fusedStates[i].exp_avg.allclose(referenceStates[i].exp_avg, 1e-5, 1e-7));
            Assert.True(fusedStates[i].exp_avg_sq.allclose(referenceStates[i].exp_avg_sq, 1e-5, 1e-9));
        }
    }

    [Fact]
    public void ParametersWithoutAGradientAreLeftAlone()
    {
        using var scope = NewDisposeScope();
        using var moving = new Parameter(ones(100_000));
        using var idle = new Parameter(ones(10));
        using var optimizer = TrainingOptimizer.CreateAdamW([moving, idle], lr: 0.1);
        moving.grad = ones(100_000);
        optimizer.step();

        // First AdamW step: m̂ = g and v̂ = g², so every value moves by lr · g / (|g| + eps) = 0.1.
        Assert.True(moving.allclose(full(100_000, 0.9f), 1e-6, 1e-6));
        Assert.True(idle.equal(ones(10)).all().item<bool>());
        var states = optimizer.state_dict().State.Cast<AdamW.State>().ToList();
        Assert.Equal([1L, 0L], states.Select(s => s.step));
    }
}
