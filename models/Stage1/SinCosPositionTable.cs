using static TorchSharp.torch;

namespace RAE.Models.Stage1;

/// <summary>
/// The MAE 2-D sin-cos position table (spec §3.4): for token (i, j) of a G×G grid the row is
/// [sin(j·ω), cos(j·ω), sin(i·ω), cos(i·ω)] with ω_k = 10000^(−k/(E/4)), computed in float64, returned as float32.
/// </summary>
public static class SinCosPositionTable
{
    /// <summary>Table [G·G (+1), E]; with <paramref name="withClsRow"/> an all-zero row comes first.</summary>
    public static Tensor Create(int embedDim, int gridSize, bool withClsRow)
    {
        if (embedDim % 4 != 0) throw new ArgumentException($"sin-cos position table: embed dim {embedDim} must be divisible by 4", nameof(embedDim));
        if (gridSize <= 0) throw new ArgumentException($"sin-cos position table: grid size {gridSize} must be positive", nameof(gridSize));
        var quarter = embedDim / 4;
        var offset = withClsRow ? 1 : 0;
        var values = new float[(gridSize * gridSize + offset) * embedDim];
        var omega = new double[quarter];
        for (var k = 0; k < quarter; k++) omega[k] = 1.0 / Math.Pow(10000.0, k / (double)quarter);
        for (var i = 0; i < gridSize; i++)
        for (var j = 0; j < gridSize; j++)
        {
            var row = (offset + i * gridSize + j) * embedDim;
            for (var k = 0; k < quarter; k++)
            {
                values[row + k] = (float)Math.Sin(j * omega[k]);
                values[row + quarter + k] = (float)Math.Cos(j * omega[k]);
                values[row + 2 * quarter + k] = (float)Math.Sin(i * omega[k]);
                values[row + 3 * quarter + k] = (float)Math.Cos(i * omega[k]);
            }
        }
        return tensor(values, new long[] { gridSize * gridSize + offset, embedDim });
    }
}
