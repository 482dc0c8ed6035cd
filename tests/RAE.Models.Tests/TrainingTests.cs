using RAE.Models.IO;
using RAE.Models.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class TrainingTests
{
    [Fact]
    public void LinearScheduleOfTheMainConfigHitsItsKeyValues()
    {
        // DiTDH-XL config: base 2e-4, final 2e-5, warm-up 40 epochs (constant), linear decay to epoch 800; 10 steps/epoch.
        var schedule = LearningRateSchedule.FromEpochs(2e-4, 2e-5, 40, 800, 10, DecayShape.Linear, warmupFromZero: false);
        Assert.Equal((400L, 8000L), (schedule.WarmupSteps, schedule.DecayEndSteps));
        Assert.Equal(2e-4, schedule.LearningRate(0), 15);
        Assert.Equal(2e-4, schedule.LearningRate(399), 15);
        Assert.Equal(2e-4, schedule.LearningRate(400), 15);
        Assert.Equal(2e-4 * (1 - 0.9 * 0.5), schedule.LearningRate(4200), 15);
        Assert.Equal(2e-4 * (1 - 0.9 * 7599.0 / 7600), schedule.LearningRate(7999), 15);
        Assert.Equal(2e-5, schedule.LearningRate(8000), 15);
        Assert.Equal(2e-5, schedule.LearningRate(1_000_000), 15);
    }

    [Fact]
    public void CosineScheduleWithWarmupFromZeroFollowsTheFormula()
    {
        var schedule = new LearningRateSchedule(1e-3, 1e-4, 100, 1100, DecayShape.Cosine, warmupFromZero: true);
        Assert.Equal(1e-3 / 100, schedule.LearningRate(0), 15);
        Assert.Equal(1e-3 * 50 / 100, schedule.LearningRate(49), 15);
        Assert.Equal(1e-3, schedule.LearningRate(99), 15);
        Assert.Equal(1e-3, schedule.LearningRate(100), 15);
        var r = 0.1;
        Assert.Equal(1e-3 * (r + (1 - r) * 0.5 * (1 + Math.Cos(Math.PI * 0.25))), schedule.LearningRate(350), 15);
        Assert.Equal(1e-3 * (r + (1 - r) * 0.5), schedule.LearningRate(600), 15);
        Assert.Equal(1e-4, schedule.LearningRate(1100), 15);
    }

    [Fact]
    public void ScheduleRejectsInconsistentSettingsAndSetsTheOptimizersRate()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(1e-3, 1e-4, 100, 50, DecayShape.Linear, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(0, 1e-4, 0, 50, DecayShape.Linear, false));
        Assert.Contains("'step'", Assert.Throws<ArgumentException>(() => LearningRateSchedule.ParseShape("step")).Message);
        using var parameter = new Parameter(ones(3));
        using var optimizer = TrainingOptimizer.CreateAdamW([parameter], lr: 1.0);
        var schedule = new LearningRateSchedule(2e-4, 2e-5, 0, 10, DecayShape.Linear, false);
        schedule.Apply(optimizer, 5);
        Assert.Equal(schedule.LearningRate(5), optimizer.ParamGroups.Single().LearningRate, 15);
    }

    [Fact]
    public void ClippingReturnsThePreClipNormAndScalesLikeTorch()
    {
        using var scope = NewDisposeScope();
        using var a = new Parameter(zeros(2));
        using var b = new Parameter(zeros(2, 2));
        using var frozen = new Parameter(zeros(3));
        a.grad = tensor(new[] { 3f, 0f });
        b.grad = tensor(new[] { 0f, 4f, 0f, 12f }).view(2, 2);
        var norm = GradientClipping.ClipGradNorm([a, b, frozen], 1.0);
        Assert.Equal(13.0, norm, 5);
        var coefficient = 1.0 / (13.0 + 1e-6);
        Assert.True(a.grad.allclose(tensor(new[] { 3f, 0f }) * coefficient, 1e-6, 1e-7));
        Assert.True(b.grad.allclose(tensor(new[] { 0f, 4f, 0f, 12f }).view(2, 2) * coefficient, 1e-6, 1e-7));
        var small = GradientClipping.ClipGradNorm([a, b], 5.0);
        Assert.Equal(1.0, small, 5);
        Assert.True(a.grad.allclose(tensor(new[] { 3f, 0f }) * coefficient, 1e-6, 1e-7));
    }

    [Fact]
    public void EmaStartsAsAnExactCopyAndMovesByTheDecay()
    {
        using var scope = NewDisposeScope();
        using var model = nn.Linear(4, 3);
        using var ema = nn.Linear(4, 3);
        ExponentialMovingAverage.CopyFrom(ema, model);
        Assert.True(ema.weight!.equal(model.weight!).all().item<bool>());
        Assert.True(ema.bias!.equal(model.bias!).all().item<bool>());
        var before = ema.weight!.detach().clone();
        using (no_grad()) model.weight!.add_(1.0);
        ExponentialMovingAverage.Update(ema, model, 0.9);
        Assert.True(ema.weight!.allclose(0.9 * before + 0.1 * model.weight!.detach(), 1e-6, 1e-7));
        using var other = nn.Linear(4, 2);
        Assert.Throws<ArgumentException>(() => ExponentialMovingAverage.CopyFrom(other, model));
    }

    [Fact]
    public void AdamWStepMatchesTheReferenceOnItsClippedGradients()
    {
        // Model-free: every trainable tensor of the transport case becomes a parameter holding the reference weights with
        // the reference's clipped gradient; one AdamW(2e-4, (0.9, 0.95), wd 0, eps 1e-8) step must give param_after.
        var folder = Fixtures.Case("transport");
        var weights = SafeTensors.Load(Path.Combine(folder, "weights.safetensors"));
        var step = SafeTensors.Load(Path.Combine(folder, "train_step.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            var names = step.Keys.Where(k => k.StartsWith("grad_clipped.", StringComparison.Ordinal)).Select(k => k["grad_clipped.".Length..]).ToList();
            Assert.Equal(52, names.Count);
            var parameters = names.Select(name =>
            {
                var parameter = new Parameter(weights[name].clone());
                parameter.grad = step[$"grad_clipped.{name}"].clone();
                return parameter;
            }).ToList();
            using var optimizer = TrainingOptimizer.CreateAdamW(parameters, 2e-4, 0.9, 0.95, 0.0, 1e-8);
            optimizer.step();
            for (var i = 0; i < names.Count; i++)
            {
                var expected = step[$"param_after.{names[i]}"];
                var reference = expected - weights[names[i]];
                var ours = parameters[i].detach() - weights[names[i]];
                // The update itself (about ±lr per weight) must agree to float32 rounding of the weights (~1e-7 / 2e-4).
                var updateError = (ours - reference).abs().max().item<float>() / reference.abs().max().item<float>();
                Assert.True(updateError < 2e-3, $"{names[i]}: AdamW update differs by {updateError:g3} of its size");
                var error = (parameters[i].detach() - expected).abs().max().item<float>() / expected.abs().max().item<float>();
                Assert.True(error < 1e-6, $"{names[i]}: parameters after AdamW differ by {error:g3}");
            }
            foreach (var parameter in parameters) parameter.Dispose();
        }
        finally
        {
            foreach (var tensor in weights.Values.Concat(step.Values)) tensor.Dispose();
        }
    }
}

public sealed class TrainingStepEndToEndTests
{
    [Fact]
    public void OneTrainingStepFromOurOwnGradientsLandsOnTheReferenceParameters()
    {
        // loss → backward → clip(1.0) → AdamW entirely with our numbers. AdamW's first step is lr·g/(|g| + eps), which
        // turns float32-level gradient differences of near-zero gradients into visible parameter differences, so this
        // end-to-end check bounds the update differences instead (the per-stage checks in TransportCaseChecker hold 1e-5).
        var folder = Fixtures.Case("transport");
        var referenceCase = RAE.Models.Verification.ReferenceCase.Open(folder);
        var weights = SafeTensors.Load(Path.Combine(folder, "weights.safetensors"));
        var io = SafeTensors.Load(Path.Combine(folder, "io.safetensors"));
        var step = SafeTensors.Load(Path.Combine(folder, "train_step.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            using var model = new RAE.Models.Stage2.DiTwDDTHead(RAE.Models.Stage2.DiTwDDTHeadOptions.FromReferenceParams(referenceCase.Root.GetProperty("params")));
            StateDictLoading.LoadStrict(model, weights, "transport/weights.safetensors");
            model.eval();
            var transport = RAE.Models.Transport.FlowTransport.Create();
            using (var loss = transport.TrainingLosses((x, t, y) => model.forward(x, t, y), io["loss.x1"], io["loss.y"], io["loss.x0"], io["loss.t"]))
                loss.Loss.mean().backward();
            var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
            var norm = GradientClipping.ClipGradNorm(trainable.Select(p => p.parameter), 1.0);
            Assert.Equal(step["grad_total_norm"].item<float>(), norm, tolerance: 1e-4);
            using var optimizer = TrainingOptimizer.CreateAdamW(trainable.Select(p => p.parameter));
            optimizer.step();
            long total = 0, off = 0;
            foreach (var (name, parameter) in trainable)
            {
                var difference = (parameter.detach() - step[$"param_after.{name}"]).abs();
                // Never more than a flipped update (2·lr); differing by over 1% of lr only where the gradient is tiny.
                Assert.True(difference.max().item<float>() <= 2.05 * 2e-4, $"{name}: {difference.max().item<float>():g3}");
                total += difference.numel();
                off += difference.gt(0.01 * 2e-4).sum().item<long>();
            }
            Assert.True(off <= total / 1000, $"{off} of {total} parameters moved differently by more than 1% of lr");
        }
        finally
        {
            foreach (var tensor in weights.Values.Concat(io.Values).Concat(step.Values)) tensor.Dispose();
        }
    }
}

public sealed class Stage2TrainingStepTests
{
    [Fact]
    public void OneStepReportsTheReferenceLossAndNormAndUpdatesTheEma()
    {
        var folder = Fixtures.Case("transport");
        var parameters = RAE.Models.Verification.ReferenceCase.Open(folder).Root.GetProperty("params");
        var weights = SafeTensors.Load(Path.Combine(folder, "weights.safetensors"));
        var io = SafeTensors.Load(Path.Combine(folder, "io.safetensors"));
        var step = SafeTensors.Load(Path.Combine(folder, "train_step.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            var options = RAE.Models.Stage2.DiTwDDTHeadOptions.FromReferenceParams(parameters);
            using var model = new RAE.Models.Stage2.DiTwDDTHead(options);
            using var ema = new RAE.Models.Stage2.DiTwDDTHead(options);
            StateDictLoading.LoadStrict(model, weights, "transport/weights.safetensors");
            ExponentialMovingAverage.CopyFrom(ema, model);
            // Train mode would drop labels at random; the fixture's loss was taken in eval mode.
            model.eval();
            var schedule = new LearningRateSchedule(2e-4, 2e-5, 10, 100, DecayShape.Linear, warmupFromZero: false);
            using var trainer = new Stage2TrainingStep(model, RAE.Models.Transport.FlowTransport.Create(), schedule, 1.0, ema, 0.9);
            var synchronised = 0;
            var result = trainer.Run((x, t, y) => model.forward(x, t, y), io["loss.x1"], io["loss.y"], io["loss.x0"], io["loss.t"],
                synchronise: trainable =>
                {
                    // The hook sees every trainable parameter with its gradient, before clipping.
                    Assert.All(trainable, p => Assert.NotNull(p.grad));
                    synchronised++;
                });
            Assert.Equal(1, synchronised);
            Assert.Equal(0, result.Step);
            Assert.Equal(1, trainer.StepCount);
            Assert.Equal(2e-4, result.LearningRate, 15);
            Assert.Equal(io["loss.mean"].item<float>(), result.Loss, tolerance: 1e-4);
            Assert.Equal(step["grad_total_norm"].item<float>(), result.GradientNorm, tolerance: 1e-4);
            var emaWeights = ema.state_dict();
            foreach (var (name, parameter) in model.named_parameters())
            {
                var expected = 0.9 * weights[name] + 0.1 * parameter.detach();
                Assert.True(emaWeights[name].allclose(expected, 1e-6, 1e-7), $"EMA of {name}");
                if (parameter.requires_grad)
                    Assert.True((parameter.detach() - step[$"param_after.{name}"]).abs().max().item<float>() <= 2.05 * 2e-4, name);
            }
        }
        finally
        {
            foreach (var tensor in weights.Values.Concat(io.Values).Concat(step.Values)) tensor.Dispose();
        }
    }
}
