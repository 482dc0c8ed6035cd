using RAE.Models.Stage2;
using RAE.Models.Training;
using RAE.Models.Transport;
using TorchSharp.Modules;
using static TorchSharp.torch;
using EncoderDecoderPair = RAE.Configuration.EncoderDecoderPair;

namespace RAE.Models.Tests.Training;

public sealed class Stage2NonFiniteGuardTests
{
    private static readonly DiTwDDTHeadOptions Tiny = new()
    {
        InputSize = 2, InChannels = 4, HiddenSize = new(16, 16), Depth = new(1, 1), NumHeads = EncoderDecoderPair.Both(1), NumClasses = 3,
    };

    [Fact]
    public void ANaNForwardSkipsTheUpdateAndLeavesParametersOptimizerAndEmaUnchanged()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(7, CPU);
        using var model = new DiTwDDTHead(Tiny, generator);
        using var ema = new DiTwDDTHead(Tiny, generator);
        ExponentialMovingAverage.CopyFrom(ema, model);
        model.eval();
        var schedule = new LearningRateSchedule(1e-2, 1e-3, 0, 100, DecayShape.Linear, warmupFromZero: false);
        using var trainer = new Stage2TrainingStep(model, FlowTransport.Create(), schedule, 1.0, ema, 0.5);
        var x1 = randn(2, 4, 2, 2, generator: generator);
        var labels = tensor(new long[] { 0, 2 });

        // One good step first, so AdamW has moments and the EMA has moved away from the model.
        var good = trainer.Run((x, t, y) => model.forward(x, t, y), x1, labels, generator: generator);
        Assert.True(double.IsFinite(good.Loss) && double.IsFinite(good.GradientNorm));
        var parameters = Snapshot(model);
        var averages = Snapshot(ema);
        var moments = Moments(trainer.Optimizer);
        Assert.NotEmpty(moments);

        var error = Assert.Throws<NonFiniteTrainingException>(() =>
            trainer.Run((x, t, y) => model.forward(x, t, y).mul(double.NaN), x1, labels, generator: generator));

        Assert.Equal(2, error.Step);
        Assert.True(double.IsNaN(error.GradientNorm));
        Assert.StartsWith("step 2: non-finite loss/gradient norm", error.Message);
        Assert.Equal(1, trainer.StepCount);
        AssertSame(parameters, Snapshot(model));
        AssertSame(averages, Snapshot(ema));
        AssertSame(moments, Moments(trainer.Optimizer));
        Assert.All(trainer.Trainable, p => Assert.Null(p.grad));
        Assert.All(trainer.Optimizer.state_dict().State.Cast<AdamW.State>(), s => Assert.Equal(1, s.step));

        // The trainer is still usable: the next finite step is step 2.
        var next = trainer.Run((x, t, y) => model.forward(x, t, y), x1, labels, generator: generator);
        Assert.Equal(1, next.Step);
        Assert.Equal(2, trainer.StepCount);
    }

    [Fact]
    public void ANonFiniteSharedLossSkipsTheUpdateEvenWithFiniteGradients()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(11, CPU);
        using var model = new DiTwDDTHead(Tiny, generator);
        model.eval();
        var schedule = new LearningRateSchedule(1e-2, 1e-3, 0, 100, DecayShape.Linear, warmupFromZero: false);
        using var trainer = new Stage2TrainingStep(model, FlowTransport.Create(), schedule, clipGrad: null);
        var before = Snapshot(model);
        foreach (var parameter in trainer.Trainable) parameter.grad = ones_like(parameter);

        var error = Assert.Throws<NonFiniteTrainingException>(() => trainer.Update(loss: double.PositiveInfinity));

        Assert.Equal(1, error.Step);
        Assert.Equal(double.PositiveInfinity, error.Loss);
        Assert.True(double.IsFinite(error.GradientNorm));
        Assert.Contains("loss Infinity", error.Message);
        Assert.Equal(0, trainer.StepCount);
        AssertSame(before, Snapshot(model));
        Assert.Empty(Moments(trainer.Optimizer));
    }

    private static List<float[]> Snapshot(nn.Module module) =>
        module.parameters().Select(p => p.detach().flatten().data<float>().ToArray()).ToList();

    private static List<float[]> Moments(AdamW optimizer) =>
        optimizer.state_dict().State.Cast<AdamW.State>()
            .Where(s => s.step > 0)
            .SelectMany(s => new[] { s.exp_avg.flatten().data<float>().ToArray(), s.exp_avg_sq.flatten().data<float>().ToArray() })
            .ToList();

    private static void AssertSame(List<float[]> expected, List<float[]> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++) Assert.Equal(expected[i], actual[i]);
    }
}
