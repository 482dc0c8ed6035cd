using static TorchSharp.torch;

namespace RAE.Models.Sampling;

/// <summary>
/// torchdiffeq's dopri5 (RKAdaptiveStepsizeODESolver with the Dormand–Prince–Shampine tableau): initial step from
/// Hairer–Nørsett–Wanner II.4, RMS error norm over the whole state, error_tol = atol + rtol·max(|y0|, |y1|), step
/// factor min(ifactor, max(safety/ratio^(1/5), dfactor)) (dfactor lifted to 1 after an accepted step), FSAL, and
/// output at the requested times by the 4th-order dense-output polynomial. Time runs in float64, increasing.
/// </summary>
internal static class Dopri5Solver
{
    private const int Order = 5;
    private const double Safety = 0.9;
    private const double IncreaseFactor = 10.0;
    private const double DecreaseFactor = 0.2;
    private const int MaxSteps = 1_000_000;

    private static readonly double[] Alpha = [1 / 5.0, 3 / 10.0, 4 / 5.0, 8 / 9.0, 1.0, 1.0];

    private static readonly double[][] Beta =
    [
        [1 / 5.0],
        [3 / 40.0, 9 / 40.0],
        [44 / 45.0, -56 / 15.0, 32 / 9.0],
        [19372 / 6561.0, -25360 / 2187.0, 64448 / 6561.0, -212 / 729.0],
        [9017 / 3168.0, -355 / 33.0, 46732 / 5247.0, 49 / 176.0, -5103 / 18656.0],
        [35 / 384.0, 0, 500 / 1113.0, 125 / 192.0, -2187 / 6784.0, 11 / 84.0],
    ];

    private static readonly double[] ErrorWeights =
    [
        35 / 384.0 - 1951 / 21600.0,
        0,
        500 / 1113.0 - 22642 / 50085.0,
        125 / 192.0 - 451 / 720.0,
        -2187 / 6784.0 - -12231 / 42400.0,
        11 / 84.0 - 649 / 6300.0,
        -1.0 / 60.0,
    ];

    private static readonly double[] MidWeights =
    [
        6025192743 / 30085553152.0 / 2, 0, 51252292925 / 65400821598.0 / 2, -2691868925 / 45128329728.0 / 2,
        187940372067 / 1594534317056.0 / 2, -1776094331 / 19743644256.0 / 2, 11237099 / 235043384.0 / 2,
    ];

    /// <summary>State after the last accepted step and the dense-output coefficients over [T0, T1].</summary>
    private sealed class StepState : IDisposable
    {
        public required Tensor Y { get; init; }
        public required Tensor F { get; init; }
        public required double T0 { get; init; }
        public required double T1 { get; init; }
        public required double Dt { get; init; }
        public required Tensor[] Interpolation { get; init; }

        public void Dispose()
        {
            Y.Dispose();
            F.Dispose();
            foreach (var c in Interpolation) c.Dispose();
        }
    }

    public static Tensor Integrate(OdeFunction f, Tensor y0, double[] grid, double atol, double rtol)
    {
        if (!(atol >= 0) || !(rtol >= 0) || atol + rtol <= 0)
            throw new ArgumentException($"dopri5 needs atol >= 0 and rtol >= 0, not both 0 (got atol {atol}, rtol {rtol})");
        var outputs = new List<Tensor> { y0.alias() };
        StepState? state = null;
        try
        {
            using (var scope = NewDisposeScope())
            {
                var f0 = f(grid[0], y0);
                var firstStep = InitialStep(f, grid[0], y0, f0, atol, rtol);
                state = new StepState
                {
                    Y = y0.alias().MoveToOuterDisposeScope(), F = f0.MoveToOuterDisposeScope(), T0 = grid[0], T1 = grid[0], Dt = firstStep,
                    Interpolation = [],
                };
            }
            var steps = 0;
            for (var i = 1; i < grid.Length; i++)
            {
                while (grid[i] > state.T1)
                {
                    if (++steps > MaxSteps) throw new InvalidOperationException($"dopri5 exceeded {MaxSteps} steps before t = {grid[i]}");
                    var next = AdaptiveStep(f, state, atol, rtol);
                    if (!ReferenceEquals(next, state)) state.Dispose();
                    state = next;
                }
                outputs.Add(Evaluate(state, grid[i]));
            }
            return stack(outputs);
        }
        finally
        {
            state?.Dispose();
            foreach (var output in outputs) output.Dispose();
        }
    }

    private static double RmsNorm(Tensor x)
    {
        using var scope = NewDisposeScope();
        return x.to(float64).square().mean().sqrt().item<double>();
    }

    private static double InitialStep(OdeFunction f, double t0, Tensor y0, Tensor f0, double atol, double rtol)
    {
        using var scope = NewDisposeScope();
        var scale = atol + y0.abs() * rtol;
        var d0 = RmsNorm(y0 / scale);
        var d1 = RmsNorm(f0 / scale);
        var h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1;
        var y1 = y0 + h0 * f0;
        var f1 = f(t0 + h0, y1);
        var d2 = RmsNorm((f1 - f0) / scale) / h0;
        var h1 = d1 <= 1e-15 && d2 <= 1e-15 ? Math.Max(1e-6, h0 * 1e-3) : Math.Pow(0.01 / Math.Max(d1, d2), 1.0 / Order);
        return Math.Min(100 * h0, h1);
    }

    private static StepState AdaptiveStep(OdeFunction f, StepState state, double atol, double rtol)
    {
        var t0 = state.T1;
        var dt = state.Dt;
        var t1 = t0 + dt;
        if (!(t1 > t0)) throw new InvalidOperationException($"dopri5 step size underflow at t = {t0} (dt = {dt})");
        using var scope = NewDisposeScope();
        var y0 = state.Y;
        var k = new List<Tensor> { state.F };
        Tensor yi = y0;
        for (var i = 0; i < Alpha.Length; i++)
        {
            var ti = Alpha[i] == 1.0 ? t1 : t0 + Alpha[i] * dt;
            yi = y0 + Combine(k, Beta[i], dt);
            k.Add(f(ti, yi));
        }
        // The last stage of Dormand–Prince evaluates at the 5th-order solution itself (FSAL), so y1 = yi.
        var y1 = yi;
        var f1 = k[^1];
        var error = Combine(k, ErrorWeights, dt);
        var tolerance = atol + rtol * maximum(y0.abs(), y1.abs());
        var ratio = RmsNorm(error / tolerance);
        if (!double.IsFinite(ratio)) throw new InvalidOperationException($"dopri5 produced a non-finite error estimate at t = {t0}");
        var nextDt = OptimalStep(dt, ratio);
        if (ratio > 1)
            return new StepState
            {
                Y = y0.alias().MoveToOuterDisposeScope(), F = state.F.alias().MoveToOuterDisposeScope(), T0 = state.T0, T1 = t0,
                Dt = nextDt, Interpolation = state.Interpolation.Select(c => c.alias().MoveToOuterDisposeScope()).ToArray(),
            };
        var yMid = y0 + Combine(k, MidWeights, dt);
        var coefficients = InterpolationFit(y0, y1, yMid, state.F, f1, dt);
        return new StepState
        {
            Y = y1.MoveToOuterDisposeScope(), F = f1.alias().MoveToOuterDisposeScope(), T0 = t0, T1 = t1, Dt = nextDt,
            Interpolation = coefficients.Select(c => c.MoveToOuterDisposeScope()).ToArray(),
        };
    }

    private static Tensor Combine(List<Tensor> k, double[] weights, double dt)
    {
        Tensor? sum = null;
        for (var j = 0; j < weights.Length && j < k.Count; j++)
        {
            if (weights[j] == 0) continue;
            var term = k[j] * (weights[j] * dt);
            sum = sum is null ? term : sum + term;
        }
        return sum ?? zeros_like(k[0]);
    }

    private static double OptimalStep(double lastStep, double errorRatio)
    {
        if (errorRatio == 0) return lastStep * IncreaseFactor;
        var decrease = errorRatio < 1 ? 1.0 : DecreaseFactor;
        var factor = Math.Min(IncreaseFactor, Math.Max(Safety / Math.Pow(errorRatio, 1.0 / Order), decrease));
        return lastStep * factor;
    }

    /// <summary>Coefficients [e, d, c, b, a] of p(x) = a·x⁴ + b·x³ + c·x² + d·x + e on x ∈ [0, 1].</summary>
    private static Tensor[] InterpolationFit(Tensor y0, Tensor y1, Tensor yMid, Tensor f0, Tensor f1, double dt)
    {
        var a = 2 * dt * (f1 - f0) - 8 * (y1 + y0) + 16 * yMid;
        var b = dt * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * yMid;
        var c = dt * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * yMid;
        var d = dt * f0;
        return [y0.alias(), d, c, b, a];
    }

    private static Tensor Evaluate(StepState state, double t)
    {
        if (!(state.T0 <= t && t <= state.T1)) throw new InvalidOperationException($"dopri5 interpolation at {t} outside [{state.T0}, {state.T1}]");
        if (state.Interpolation.Length == 0) return state.Y.alias();
        using var scope = NewDisposeScope();
        var x = (t - state.T0) / (state.T1 - state.T0);
        var total = state.Interpolation[0] + x * state.Interpolation[1];
        var power = x;
        for (var i = 2; i < state.Interpolation.Length; i++)
        {
            power *= x;
            total = total + power * state.Interpolation[i];
        }
        return total.MoveToOuterDisposeScope();
    }
}
