using RAE.Models.Sampling;
using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class SamplerOdeTests
{
    private static double[] Grid(double from, double to, int points) =>
        Enumerable.Range(0, points).Select(i => from + (to - from) * i / (points - 1)).ToArray();

    /// <summary>One step over [0, 1] of y' = t⁴ from 0 tells the quadrature rule of each method apart.</summary>
    [Theory]
    [InlineData(OdeMethod.Euler, 0.0)]
    [InlineData(OdeMethod.Midpoint, 1.0 / 16)]
    [InlineData(OdeMethod.Heun2, 0.5)]
    [InlineData(OdeMethod.Rk4, 132.0 / 648)] // 3/8 rule: (0 + 3·(1/3)⁴ + 3·(2/3)⁴ + 1)/8; the classic RK4 would give 5/24
    public void FixedGridMethodsUseTorchdiffeqsTableaus(OdeMethod method, double expected)
    {
        using var scope = NewDisposeScope();
        var y = OdeSolvers.Integrate((t, state) => full_like(state, Math.Pow(t, 4)), zeros(1, dtype: float64), [0.0, 1.0], method);
        Assert.Equal(expected, y[1].item<double>(), 6);
    }

    [Theory]
    [InlineData(OdeMethod.Rk4, 4)]
    [InlineData(OdeMethod.Heun2, 2)]
    [InlineData(OdeMethod.Midpoint, 2)]
    [InlineData(OdeMethod.Euler, 1)]
    public void FixedGridMethodsConvergeAtTheirOrderOnAClosedFormSolution(OdeMethod method, int order)
    {
        // y' = −2t·y, y(0) = 1  →  y(t) = exp(−t²), integrated down from t = 1.5 to 0 (a decreasing grid, like sampling).
        using var scope = NewDisposeScope();
        double ErrorWith(int points)
        {
            var y0 = tensor(new[] { Math.Exp(-2.25) }, float64);
            var trajectory = OdeSolvers.Integrate((t, y) => -2 * t * y, y0, Grid(1.5, 0, points), method);
            return Math.Abs(trajectory[-1].item<double>() - 1.0);
        }
        var coarse = ErrorWith(21);
        var fine = ErrorWith(41);
        var observedOrder = Math.Log2(coarse / fine);
        Assert.InRange(observedOrder, order - 0.3, order + 0.5);
        if (method == OdeMethod.Rk4) Assert.True(fine < 1e-6, $"rk4 error {fine}");
    }

    [Fact]
    public void Dopri5MatchesClosedFormSolutionsAtEveryGridPoint()
    {
        using var scope = NewDisposeScope();
        // Harmonic oscillator y = (cos t, −sin t), output on an increasing grid.
        var times = Grid(0, 10, 11);
        var y0 = tensor(new[] { 1.0, 0.0 }, float64);
        var trajectory = OdeSolvers.Integrate((t, y) => stack(new[] { y[1], -y[0] }), y0, times, OdeMethod.Dopri5, atol: 1e-10, rtol: 1e-10);
        var exact = stack(times.Select(t => tensor(new[] { Math.Cos(t), -Math.Sin(t) }, float64)).ToArray());
        Assert.True((trajectory - exact).abs().max().item<double>() < 1e-7);

        // exp(−t²) integrated down from 2 to 0 on a decreasing grid (dense output between steps).
        var down = Grid(2, 0, 9);
        var start = tensor(new[] { Math.Exp(-4.0) }, float64);
        var loose = OdeSolvers.Integrate((t, y) => -2 * t * y, start, down, OdeMethod.Dopri5, atol: 1e-6, rtol: 1e-3);
        var tight = OdeSolvers.Integrate((t, y) => -2 * t * y, start, down, OdeMethod.Dopri5, atol: 1e-12, rtol: 1e-10);
        var reference = tensor(down.Select(t => Math.Exp(-t * t)).ToArray(), float64).view(-1, 1);
        var tightError = (tight - reference).abs().max().item<double>();
        var looseError = (loose - reference).abs().max().item<double>();
        Assert.True(tightError < 1e-9, $"tight dopri5 error {tightError}");
        Assert.True(looseError < 5e-3, $"loose dopri5 error {looseError}");
        Assert.True(tightError < looseError);
    }

    [Fact]
    public void Dopri5AdaptsItsStepCountToTheTolerance()
    {
        using var scope = NewDisposeScope();
        int Evaluations(double rtol)
        {
            var count = 0;
            OdeSolvers.Integrate((t, y) => { count++; return stack(new[] { y[1], -y[0] }); },
                tensor(new[] { 1.0, 0.0 }, float64), [0.0, 20.0], OdeMethod.Dopri5, atol: rtol * 1e-3, rtol: rtol);
            return count;
        }
        Assert.True(Evaluations(1e-9) > 3 * Evaluations(1e-3));
    }

    [Fact]
    public void DecreasingGridsHandTheModelTorchdiffeqsNegatedTimes()
    {
        using var scope = NewDisposeScope();
        var calls = new List<double>();
        float[] grid = [1f, 0.75f, 0.3f];
        OdeSolvers.Integrate((t, y) => { calls.Add(t); return y.clone(); }, ones(1), grid.Select(g => (double)g).ToArray(), OdeMethod.Heun2);
        var expected = new List<double>();
        for (var i = 0; i < 2; i++)
        {
            var t0 = -grid[i];
            var dt = -grid[i + 1] - t0;
            expected.Add(grid[i]);
            expected.Add(-(t0 + dt));
        }
        Assert.Equal(expected, calls);
    }

    [Fact]
    public void ShiftedGridsMatchTheSpecificationsValues()
    {
        var grid256 = TimeGrid.Shifted(0, 0.999, 50, Math.Sqrt(48));
        double[] head256 = [1.0, 0.997005, 0.993902, 0.990684];
        double[] tail256 = [0.314706, 0.231979, 0.131505, 0.006887];
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(head256[i], grid256[i], tolerance: 1e-6);
            Assert.Equal(tail256[i], grid256[46 + i], tolerance: 1e-6);
        }
        var grid512 = TimeGrid.Shifted(0, 0.999, 50, Math.Sqrt(192));
        Assert.Equal(0.998500, grid512[1], tolerance: 1e-6);
        Assert.Equal(0.232443, grid512[48], tolerance: 1e-6);
        Assert.Equal(0.013681, grid512[49], tolerance: 1e-6);
    }

    [Fact]
    public void OdeSamplerRejectsUnsupportedSettingsClearly()
    {
        var transport = FlowTransport.Create();
        Assert.Contains("heun2", Assert.Throws<ArgumentException>(() => new OdeSampler(transport, "heun")).Message);
        Assert.Contains("'bosh5'", Assert.Throws<ArgumentException>(() => new OdeSampler(transport, "bosh5")).Message);
        Assert.Contains("reverse", Assert.Throws<NotSupportedException>(() => new OdeSampler(transport, "euler", reverse: true)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new OdeSampler(transport, "euler", numSteps: 1));
    }

    [Fact]
    public void OdeSamplerIntegratesAGaussianFlowToItsExactMarginal()
    {
        // Data N(m, s²) per coordinate, x_t = (1−t)·x1 + t·x0: the exact velocity transports N(0,1) at t = 1 to
        // N((1−t)m, (1−t)²s² + t²) at every t; dopri5 must land on that affine map.
        using var scope = NewDisposeScope();
        const double m = 2.0, s = 0.5;
        var transport = FlowTransport.Create(timeDistShift: 3.0);
        var sampler = new OdeSampler(transport, "dopri5", 6, atol: 1e-9, rtol: 1e-9);
        var x = linspace(-3, 3, 13, dtype: float64).view(13, 1);
        var trajectory = sampler.Sample(x, GaussianToy.Velocity(m, s));
        var tEnd = sampler.Times[^1];
        var exact = (1 - tEnd) * m + Math.Sqrt(Math.Pow(1 - tEnd, 2) * s * s + tEnd * tEnd) * x;
        Assert.True((trajectory[-1] - exact).abs().max().item<double>() < 1e-6);
    }
}

/// <summary>The exact velocity of the Linear path for Gaussian data N(m, s²) (used by ODE and SDE tests).</summary>
internal static class GaussianToy
{
    public static (Tensor Mean, Tensor Variance) Marginal(Tensor t, double m, double s) => ((1 - t) * m, (1 - t).square() * (s * s) + t.square());

    public static ModelFunction Velocity(double m, double s) => (x, t) =>
    {
        using var scope = NewDisposeScope();
        var te = t.view(-1, 1);
        var (mean, variance) = Marginal(te, m, s);
        var velocity = -m + (te - (1 - te) * (s * s)) / variance * (x - mean);
        return velocity.MoveToOuterDisposeScope();
    };
}
