using RAE.Models.Sampling;
using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class SamplerSdeTests
{
    private const double DataMean = 2.0;
    private const double DataStd = 0.5;

    [Theory]
    [InlineData("euler", "sigma", 1.0)]
    [InlineData("heun", "constant", 0.5)]
    [InlineData("euler", "SBDM", 1.0)]
    [InlineData("euler", "decreasing", 1.0)]
    [InlineData("heun", "increasing-decreasing", 1.0)]
    public void StochasticSamplingReachesTheExactGaussianMarginal(string method, string form, double norm)
    {
        using var scope = NewDisposeScope();
        var transport = FlowTransport.Create(timeDistShift: 2.0);
        var sampler = new SdeSampler(transport, method, form, norm, lastStep: null, lastStepSize: 0.1, numSteps: 80);
        using var generator = new Generator(1234, CPU);
        var start = 1.0 - sampler.Times[0];
        // x at the first grid time τ0 drawn from the exact marginal there (τ0 = 1 unless the form needs a start below 1).
        var (mean0, variance0) = GaussianToy.Marginal(tensor(sampler.Times[0], float64), DataMean, DataStd);
        var x = mean0 + variance0.sqrt() * randn(new long[] { 8000, 1 }, dtype: float64, generator: generator);
        var states = sampler.Sample(x, GaussianToy.Velocity(DataMean, DataStd), generator);
        Assert.Equal(80, states.shape[0]);
        var (mean, variance) = GaussianToy.Marginal(tensor(sampler.Times[^1], float64), DataMean, DataStd);
        var final = states[-1];
        Assert.InRange(final.mean().item<double>() - mean.item<double>(), -0.02, 0.02);
        Assert.InRange(final.var().item<double>() / variance.item<double>(), 0.94, 1.06);
        Assert.True(start >= 0);
    }

    [Theory]
    [InlineData("euler", OdeMethod.Euler)]
    [InlineData("heun", OdeMethod.Heun2)]
    public void VanishingDiffusionConvergesToTheOdeSolution(string method, OdeMethod odeMethod)
    {
        using var scope = NewDisposeScope();
        var transport = FlowTransport.Create(timeDistShift: 2.0);
        var model = GaussianToy.Velocity(DataMean, DataStd);
        var x = randn(new long[] { 500, 1 }, dtype: float64);
        var reference = new SdeSampler(transport, method, "constant", 0.0, lastStep: null, numSteps: 40);
        var ode = OdeSolvers.Integrate((t, y) =>
        {
            using var time = full(new[] { y.shape[0] }, t, dtype: y.dtype);
            return model(y, time);
        }, x, reference.Times, odeMethod)[-1];

        double DistanceToOde(double norm)
        {
            var sampler = new SdeSampler(transport, method, "constant", norm, lastStep: null, numSteps: 40);
            using var generator = new Generator(99, CPU);
            return (sampler.Sample(x, model, generator)[-1] - ode).abs().max().item<double>();
        }

        Assert.True(DistanceToOde(0.0) < 1e-6, $"zero diffusion must reproduce the ODE ({DistanceToOde(0.0)})");
        var large = DistanceToOde(1e-2);
        var small = DistanceToOde(1e-4);
        var tiny = DistanceToOde(1e-6);
        Assert.True(large > small && small > tiny, $"distances {large}, {small}, {tiny} must shrink with the diffusion");
        Assert.True(tiny < 1e-2, $"distance {tiny} at norm 1e-6");
    }

    [Fact]
    public void DiffusionFormsAreNonNegativeAndSbdmIsTheLinearPathsNoiseRate()
    {
        using var scope = NewDisposeScope();
        var transport = FlowTransport.Create();
        var x = zeros(5, 2, dtype: float64);
        var t = tensor(new[] { 0.05, 0.3, 0.5, 0.8, 0.99 }, float64);
        foreach (var form in new[] { "constant", "SBDM", "sigma", "linear", "decreasing", "increasing-decreasing" })
        {
            var diffusion = new SdeSampler(transport, "euler", form, 2.0).Diffusion(x, t);
            Assert.True(diffusion.min().item<double>() >= 0, $"{form} gave a negative diffusion");
        }
        var sbdm = new SdeSampler(transport, "euler", "SBDM", 1.5).Diffusion(x, t);
        Assert.True(sbdm.view(-1).allclose(1.5 * t / (1 - t), 1e-12, 1e-12));
    }

    [Fact]
    public void SbdmGridStartsBelowOneAndTheLastStepTimeIsTheShiftedOne()
    {
        var transport = FlowTransport.Create(timeDistShift: Math.Sqrt(48));
        var sbdm = new SdeSampler(transport, "euler", "SBDM", numSteps: 10, lastStepSize: 0.04);
        var expectedStart = Math.Sqrt(48) * 0.999 / (1 + (Math.Sqrt(48) - 1) * 0.999);
        Assert.Equal(expectedStart, sbdm.Times[0], tolerance: 1e-6);
        var expectedEnd = Math.Sqrt(48) * 0.04 / (1 + (Math.Sqrt(48) - 1) * 0.04);
        Assert.Equal(expectedEnd, sbdm.Times[^1], tolerance: 1e-6);
        Assert.Equal(1.0, new SdeSampler(transport, "euler", "sigma", numSteps: 10).Times[0]);
    }

    [Fact]
    public void LastStepRulesMoveTheFinalStateAsSpecified()
    {
        using var scope = NewDisposeScope();
        var transport = FlowTransport.Create();
        var model = GaussianToy.Velocity(DataMean, DataStd);
        using var generator = new Generator(5, CPU);
        var x = randn(new long[] { 4000, 1 }, dtype: float64, generator: generator);
        var tweedie = new SdeSampler(transport, "euler", "sigma", 1.0, "Tweedie", 0.1, 40);
        using var g1 = new Generator(6, CPU);
        var states = tweedie.Sample(x, model, g1);
        // Tweedie's denoiser E[x1 | x_τ] has the data mean; its variance is s² minus the posterior variance.
        Assert.InRange(states[-1].mean().item<double>(), DataMean - 0.03, DataMean + 0.03);
        var euler = new SdeSampler(transport, "euler", "sigma", 1.0, "Euler", 0.1, 40);
        using var g2 = new Generator(6, CPU);
        var eulerStates = euler.Sample(x, model, g2);
        var tLast = euler.Times[^1];
        using var time = full(new[] { x.shape[0] }, tLast, dtype: float64);
        var expected = eulerStates[-2] - model(eulerStates[-2], time) * tLast;
        Assert.True(eulerStates[-1].allclose(expected, 1e-12, 1e-12));
        var none = new SdeSampler(transport, "euler", "sigma", 1.0, null, 0.1, 40);
        using var g3 = new Generator(6, CPU);
        var noneStates = none.Sample(x, model, g3);
        Assert.True(noneStates[-1].equal(noneStates[-2]).all().item<bool>());
    }

    [Fact]
    public void BadSdeSettingsAreRejectedClearly()
    {
        var transport = FlowTransport.Create();
        Assert.Contains("'Euler'", Assert.Throws<ArgumentException>(() => new SdeSampler(transport, "Euler")).Message);
        Assert.Contains("'cosine'", Assert.Throws<ArgumentException>(() => new SdeSampler(transport, "euler", "cosine")).Message);
        Assert.Contains("diffusion_norm", Assert.Throws<ArgumentOutOfRangeException>(() => new SdeSampler(transport, "euler", "sigma", -1.0)).Message);
        Assert.Contains("'Last'", Assert.Throws<ArgumentException>(() => new SdeSampler(transport, lastStep: "Last")).Message);
    }
}
