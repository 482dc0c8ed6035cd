using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Sampling;

/// <summary>
/// Sampler.sample_ode of rae-spec §6.5: integrates dx/dτ = drift(x, τ) from τ = 1 (noise) down the shifted grid
/// 1 − linspace(t0, t1, num_steps) with a torchdiffeq method, and returns the state at every grid point
/// [num_steps, B, ...] (callers take [-1]). The model receives τ as a [B] tensor.
/// </summary>
public sealed class OdeSampler
{
    public OdeSampler(FlowTransport transport, string samplingMethod = "dopri5", int numSteps = 50, double atol = 1e-6, double rtol = 1e-3, bool reverse = false)
    {
        Transport = transport ?? throw new ArgumentNullException(nameof(transport));
        if (reverse)
            throw new NotSupportedException(
                "reverse=True ODE sampling (data -> noise) is not supported: the reference's interval check makes t0 > t1 and torchdiffeq rejects it (rae-spec §6.5, §13 item 8)");
        Method = OdeSolvers.ParseMethod(samplingMethod);
        if (numSteps < 2) throw new ArgumentOutOfRangeException(nameof(numSteps), numSteps, "num_steps is the number of grid points and must be >= 2");
        NumSteps = numSteps;
        Atol = atol;
        Rtol = rtol;
        var (t0, t1) = transport.CheckInterval(eval: true);
        Times = TimeGrid.Shifted(t0, t1, numSteps, transport.Shift);
    }

    public FlowTransport Transport { get; }

    public OdeMethod Method { get; }

    public int NumSteps { get; }

    public double Atol { get; }

    public double Rtol { get; }

    /// <summary>The shifted, decreasing grid (float32 values) at which states are returned.</summary>
    public IReadOnlyList<double> Times { get; }

    public Tensor Sample(Tensor xInit, ModelFunction model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var batch = xInit.shape[0];
        return OdeSolvers.Integrate(
            (t, x) =>
            {
                using var time = full(new[] { batch }, t, dtype: x.dtype, device: x.device);
                return Transport.Drift(model, x, time);
            },
            xInit, Times, Method, Atol, Rtol);
    }
}
