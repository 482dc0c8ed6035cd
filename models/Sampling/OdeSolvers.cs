using static TorchSharp.torch;

namespace RAE.Models.Sampling;

/// <summary>dy/dt = f(t, y).</summary>
public delegate Tensor OdeFunction(double t, Tensor y);

/// <summary>The torchdiffeq methods this port implements.</summary>
public enum OdeMethod
{
    Euler,
    Midpoint,
    /// <summary>torchdiffeq 'rk4': the 3/8-rule step (rk4_alt_step_func), not the classic 1/6-2/6-2/6-1/6 one.</summary>
    Rk4,
    /// <summary>torchdiffeq 'heun2': k1 = f(t, y), k2 = f(t + dt, y + dt·k1), y += dt·(k1 + k2)/2.</summary>
    Heun2,
    /// <summary>torchdiffeq 'dopri5': adaptive Dormand–Prince 5(4) with its step-size controller and dense output.</summary>
    Dopri5,
}

/// <summary>
/// A port of torchdiffeq's odeint for the methods above. Like torchdiffeq, a decreasing time grid is integrated as
/// the increasing grid −t with −f(−t, y), fixed-grid methods do their time arithmetic in float32 on the grid points
/// (so the times handed to f match torchdiffeq bit for bit) and dopri5 keeps time in float64.
/// The returned tensor holds the state at every grid point, [N, ...], with [0] = y0.
/// </summary>
public static class OdeSolvers
{
    public static OdeMethod ParseMethod(string name) => name switch
    {
        "euler" => OdeMethod.Euler,
        "midpoint" => OdeMethod.Midpoint,
        "rk4" => OdeMethod.Rk4,
        "heun2" => OdeMethod.Heun2,
        "dopri5" => OdeMethod.Dopri5,
        "heun" => throw new ArgumentException("ODE sampling_method 'heun' is not a torchdiffeq method (the reference accepts it only for the SDE sampler); use 'heun2'"),
        _ => throw new ArgumentException($"unsupported ODE sampling_method '{name}': expected one of euler, midpoint, rk4, heun2, dopri5"),
    };

    public static Tensor Integrate(OdeFunction f, Tensor y0, IReadOnlyList<double> times, OdeMethod method, double atol = 1e-6, double rtol = 1e-3)
    {
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(times);
        if (times.Count < 2) throw new ArgumentException($"the time grid needs at least 2 points, got {times.Count}");
        var decreasing = times[1] < times[0];
        for (var i = 1; i < times.Count; i++)
        {
            var ok = decreasing ? times[i] < times[i - 1] : times[i] > times[i - 1];
            if (!ok) throw new ArgumentException($"the time grid must be strictly monotonic; it breaks at index {i} ({times[i - 1]} -> {times[i]})");
        }
        var function = decreasing ? (t, y) => Negated(f, t, y) : f;
        if (method == OdeMethod.Dopri5)
        {
            var grid = times.Select(t => decreasing ? -t : t).ToArray();
            return Dopri5Solver.Integrate(function, y0, grid, atol, rtol);
        }
        var floatGrid = times.Select(t => decreasing ? -(float)t : (float)t).ToArray();
        return IntegrateFixedGrid(function, y0, floatGrid, method);
    }

    private static Tensor Negated(OdeFunction f, double t, Tensor y)
    {
        using var value = f(-t, y);
        return value.neg();
    }

    private static Tensor IntegrateFixedGrid(OdeFunction f, Tensor y0, float[] grid, OdeMethod method)
    {
        var states = new List<Tensor> { y0.alias() };
        try
        {
            var y = y0;
            for (var i = 0; i + 1 < grid.Length; i++)
            {
                using var scope = NewDisposeScope();
                var dy = FixedStep(f, method, grid[i], grid[i + 1], y);
                var next = (y + dy).MoveToOuterDisposeScope();
                states.Add(next);
                y = next;
            }
            return stack(states);
        }
        finally
        {
            foreach (var state in states) state.Dispose();
        }
    }

    private static Tensor FixedStep(OdeFunction f, OdeMethod method, float t0, float t1, Tensor y0)
    {
        var dt = t1 - t0;
        switch (method)
        {
            case OdeMethod.Euler:
                return dt * f(t0, y0);
            case OdeMethod.Midpoint:
            {
                var halfDt = 0.5f * dt;
                var yMid = y0 + f(t0, y0) * halfDt;
                return dt * f(t0 + halfDt, yMid);
            }
            case OdeMethod.Rk4:
            {
                const float oneThird = 1f / 3f;
                const float twoThirds = 2f / 3f;
                var k1 = f(t0, y0);
                var k2 = f(t0 + dt * oneThird, y0 + dt * k1 * oneThird);
                var k3 = f(t0 + dt * twoThirds, y0 + dt * (k2 - k1 * oneThird));
                var k4 = f(t1, y0 + dt * (k1 - k2 + k3));
                return (k1 + 3 * (k2 + k3) + k4) * dt * 0.125f;
            }
            case OdeMethod.Heun2:
            {
                var k1 = f(t0, y0);
                var k2 = f(t0 + dt, y0 + dt * k1);
                return dt * (k1 + k2) * 0.5f;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(method), method, "not a fixed-grid method");
        }
    }
}
