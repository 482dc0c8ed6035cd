using RAE.Models.Transport;

namespace RAE.Models.Sampling;

/// <summary>The reference's sampling time grid: τ = 1 − linspace(t0, t1, N), then τ ← s·τ / (1 + (s − 1)·τ).</summary>
public static class TimeGrid
{
    /// <summary>
    /// Computed in float32 like the reference (torch.linspace on float32, then the shift on the float32 tensor), so the
    /// times handed to the model are the reference's. Returned as doubles holding float32 values.
    /// </summary>
    public static double[] Shifted(double t0, double t1, int numPoints, double shift)
    {
        if (numPoints < 2) throw new ArgumentOutOfRangeException(nameof(numPoints), numPoints, "the time grid needs at least 2 points (num_steps >= 2)");
        TimeDistribution.ValidateShift(shift);
        var grid = new double[numPoints];
        var start = (float)t0;
        var end = (float)t1;
        var step = (end - start) / (numPoints - 1);
        var half = numPoints / 2;
        var shiftF = (float)shift;
        var shiftMinusOne = (float)(shift - 1);
        for (var i = 0; i < numPoints; i++)
        {
            // torch.linspace fills the first half from the start and the second half back from the end.
            var value = i < half ? start + step * i : end - step * (numPoints - 1 - i);
            var tau = 1f - value;
            if (shift != 1.0) tau = shiftF * tau / (1f + shiftMinusOne * tau);
            grid[i] = tau;
        }
        return grid;
    }
}
