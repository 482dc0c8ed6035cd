using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class TransportTests
{
    [Theory]
    [InlineData("gaussian")]
    [InlineData("logit_normal_0_1")]
    [InlineData("logit-normal_0")]
    [InlineData("logit-normal_0_1_2")]
    [InlineData("logit-normal_a_1")]
    [InlineData("logit-normal_0_-1")]
    [InlineData("logit-normal_0_0")]
    [InlineData("")]
    public void BadTimeDistributionStringsAreRejectedWithTheirName(string name)
    {
        var error = Assert.Throws<ArgumentException>(() => TimeDistribution.Parse(name));
        Assert.Contains($"'{name}'", error.Message);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.999)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void ShiftBelowOneIsRejected(double shift)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => FlowTransport.Create(timeDistType: "uniform", timeDistShift: shift));
        Assert.Contains("time_dist_shift", error.Message);
    }

    [Fact]
    public void ShiftFromDimensionsIsSqrtOfTheRatioAndMustBeAtLeastOne()
    {
        Assert.Equal(Math.Sqrt(48), TimeDistribution.ShiftFromDimensions(196608, 4096), 12);
        Assert.Equal(Math.Sqrt(192), TimeDistribution.ShiftFromDimensions(786432, 4096), 12);
        var error = Assert.Throws<ArgumentException>(() => TimeDistribution.ShiftFromDimensions(1024, 4096));
        Assert.Contains("below 1", error.Message);
    }

    [Fact]
    public void LogitNormalParametersAreParsed()
    {
        var distribution = TimeDistribution.Parse("logit-normal_0.5_1.5", 2.0);
        Assert.True(distribution.IsLogitNormal);
        Assert.Equal(0.5, distribution.Mu);
        Assert.Equal(1.5, distribution.Sigma);
        Assert.Equal(2.0, distribution.Shift);
    }

    [Fact]
    public void FactoryAppliesTheReferenceEpsDefaults()
    {
        var linear = FlowTransport.Create();
        Assert.Equal((0.0, 0.0), (linear.TrainEps, linear.SampleEps));
        Assert.Equal((0.0, 0.999), linear.CheckInterval());
        var noise = FlowTransport.Create("GVP", "noise");
        Assert.Equal((1e-3, 1e-3), (noise.TrainEps, noise.SampleEps));
        Assert.Equal((1e-3, 1 - 1e-3), noise.CheckInterval());
        var vp = FlowTransport.Create("VP", "velocity", "likelihood");
        Assert.Equal((1e-5, 1e-3), (vp.TrainEps, vp.SampleEps));
        Assert.Equal(LossWeight.Likelihood, vp.LossWeight);
        Assert.Equal((0.0, 1 - 1e-5), vp.CheckInterval());
        Assert.Equal(Prediction.Velocity, FlowTransport.Create(prediction: "anything").Prediction);
        Assert.Equal(LossWeight.None, FlowTransport.Create(lossWeight: "whatever").LossWeight);
        Assert.Contains("'Cosine'", Assert.Throws<ArgumentException>(() => FlowTransport.Create("Cosine")).Message);
    }

    [Fact]
    public void UniformTimesFromRecordedDrawsFollowTheFormula()
    {
        using var scope = NewDisposeScope();
        var u = tensor(new[] { 0f, 0.25f, 0.5f, 0.999f });
        var shift = Math.Sqrt(48);
        var t = FlowTransport.Create(timeDistShift: shift).SampleTime(u);
        var expected = u.to(float64) * 0.999;
        expected = shift * expected / (1 + (shift - 1) * expected);
        Assert.True(t.to(float64).allclose(expected, 0, 1e-6));
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndLogitNormalHasTheRightMoments()
    {
        using var scope = NewDisposeScope();
        var transport = FlowTransport.Create(timeDistType: "logit-normal_0.3_0.8");
        using var first = new Generator(7, CPU);
        using var second = new Generator(7, CPU);
        var a = transport.SampleTime(20000, first);
        var b = transport.SampleTime(20000, second);
        Assert.True(a.equal(b).all().item<bool>());
        Assert.True(a.min().item<float>() >= 0f && a.max().item<float>() <= 0.999f);
        var logits = a.to(float64).logit();
        Assert.InRange(logits.mean().item<double>(), 0.27, 0.33);
        Assert.InRange(logits.std().item<double>(), 0.77, 0.83);
    }

    [Theory]
    [InlineData(PathType.Linear)]
    [InlineData(PathType.Gvp)]
    [InlineData(PathType.Vp)]
    public void ConditionalVelocityConvertsBackToTheNoiseAndItsScore(PathType type)
    {
        using var scope = NewDisposeScope();
        var path = InterpolationPath.Create(type);
        var x1 = randn(3, 2, 4, 4, dtype: float64);
        var x0 = randn(3, 2, 4, 4, dtype: float64);
        var t = tensor(new[] { 0.2, 0.5, 0.9 }, float64);
        var (xt, ut) = path.Plan(t, x0, x1);
        Assert.True(path.NoiseFromVelocity(ut, xt, t).allclose(x0, 1e-9, 1e-9));
        var sigma = path.ComputeSigma(InterpolationPath.ExpandLike(t, xt)).Sigma;
        var score = path.ScoreFromVelocity(ut, xt, t);
        Assert.True(score.allclose(-x0 / sigma, 1e-9, 1e-9));
        Assert.True(path.VelocityFromScore(score, xt, t).allclose(ut, 1e-9, 1e-9));
        Assert.True(path.SbdmDiffusion(xt, t).min().item<double>() > 0);
    }

    [Theory]
    [InlineData(PathType.Linear)]
    [InlineData(PathType.Gvp)]
    [InlineData(PathType.Vp)]
    public void PathDerivativesMatchFiniteDifferences(PathType type)
    {
        using var scope = NewDisposeScope();
        var path = InterpolationPath.Create(type);
        var t = tensor(new[] { 0.1, 0.4, 0.7, 0.95 }, float64);
        const double h = 1e-6;
        var (alphaPlus, _) = path.ComputeAlpha(t + h);
        var (alphaMinus, _) = path.ComputeAlpha(t - h);
        var (sigmaPlus, _) = path.ComputeSigma(t + h);
        var (sigmaMinus, _) = path.ComputeSigma(t - h);
        var (alpha, dAlpha) = path.ComputeAlpha(t);
        var (_, dSigma) = path.ComputeSigma(t);
        Assert.True(((alphaPlus - alphaMinus) / (2 * h)).allclose(dAlpha, 1e-5, 1e-6));
        Assert.True(((sigmaPlus - sigmaMinus) / (2 * h)).allclose(dSigma, 1e-5, 1e-6));
        Assert.True(path.ComputeDAlphaAlphaRatio(t).allclose(dAlpha / alpha, 1e-9, 1e-9));
    }

    [Fact]
    public void LinearPathHasTheReferenceCoefficients()
    {
        using var scope = NewDisposeScope();
        var path = new LinearPath();
        var x = randn(2, 3, dtype: float64);
        var t = tensor(new[] { 0.25, 0.6 }, float64);
        var te = t.view(2, 1);
        Assert.True(path.SbdmDiffusion(x, t).allclose(te / (1 - te), 1e-12, 1e-12));
        var v = randn(2, 3, dtype: float64);
        Assert.True(path.ScoreFromVelocity(v, x, t).allclose((-(1 - te) * v - x) / te, 1e-12, 1e-12));
    }

    [Fact]
    public void VelocityLossIsThePerSampleMeanSquaredErrorAgainstTheConditionalVelocity()
    {
        using var scope = NewDisposeScope();
        var transport = FlowTransport.Create();
        var x1 = randn(3, 2, 4, 4);
        var x0 = randn(3, 2, 4, 4);
        var t = tensor(new[] { 0.1f, 0.5f, 0.9f });
        var output = randn(3, 2, 4, 4);
        using var result = transport.TrainingLosses((x, time) => output.clone(), x1, x0, t);
        var te = t.view(3, 1, 1, 1);
        Assert.True(result.Xt.allclose((1 - te) * x1 + te * x0, 1e-6, 1e-6));
        Assert.True(result.Ut.allclose(x0 - x1, 1e-6, 1e-6));
        Assert.True(result.Loss.allclose((output - (x0 - x1)).square().mean(new long[] { 1, 2, 3 }), 1e-6, 1e-6));
    }

    [Fact]
    public void NoiseAndScoreLossesUseTheirTargetsAndWeights()
    {
        using var scope = NewDisposeScope();
        var x1 = randn(2, 3, 2, 2, dtype: float64);
        var x0 = randn(2, 3, 2, 2, dtype: float64);
        var t = tensor(new[] { 0.3, 0.8 }, float64);
        var output = randn(2, 3, 2, 2, dtype: float64);
        var te = t.view(2, 1, 1, 1);
        using var noise = FlowTransport.Create(prediction: "noise").TrainingLosses((x, time) => output.clone(), x1, x0, t);
        Assert.True(noise.Loss.allclose((output - x0).square().mean(new long[] { 1, 2, 3 }), 1e-12, 1e-12));
        using var score = FlowTransport.Create(prediction: "score", lossWeight: "likelihood").TrainingLosses((x, time) => output.clone(), x1, x0, t);
        var weight = (te / (1 - te)) / te.square();
        Assert.True(score.Loss.allclose((weight * (output * te + x0).square()).mean(new long[] { 1, 2, 3 }), 1e-10, 1e-10));
    }

    [Fact]
    public void TrainingLossRejectsAWronglyShapedTime()
    {
        using var scope = NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() =>
            FlowTransport.Create().TrainingLosses((x, t) => x.clone(), randn(2, 3), randn(2, 3), tensor(new[] { 0.5f })));
        Assert.Contains("[2]", error.Message);
    }
}

public sealed class TransportDriftTests
{
    [Theory]
    [InlineData("score")]
    [InlineData("noise")]
    [InlineData("velocity")]
    public void EveryPredictionTypeGivesTheSameProbabilityFlowDrift(string prediction)
    {
        // Gaussian data N(2, 0.5²): the exact score is −(x − mean_t)/var_t; noise = −σ_t·score; velocity in closed form.
        using var scope = NewDisposeScope();
        const double m = 2.0, s = 0.5;
        var x = randn(5, 1, dtype: float64);
        var t = tensor(new[] { 0.1, 0.3, 0.5, 0.7, 0.95 }, float64);
        var (mean, variance) = GaussianToy.Marginal(t.view(-1, 1), m, s);
        var score = -(x - mean) / variance;
        ModelFunction model = prediction switch
        {
            "score" => (xx, tt) => score.clone(),
            "noise" => (xx, tt) => -tt.view(-1, 1) * score,
            _ => GaussianToy.Velocity(m, s),
        };
        var transport = FlowTransport.Create(prediction: prediction);
        var drift = transport.Drift(model, x, t);
        var velocity = GaussianToy.Velocity(m, s)(x, t);
        Assert.True(drift.allclose(velocity, 1e-10, 1e-10));
        var (sdeDrift, sdeScore) = transport.DriftAndScore(model, x, t);
        Assert.True(sdeDrift.allclose(velocity, 1e-10, 1e-10));
        Assert.True(sdeScore.allclose(score, 1e-9, 1e-9));
    }
}
