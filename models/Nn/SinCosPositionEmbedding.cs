using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>The fixed 2-D sin-cos position table (MAE formula), computed in float64 and returned as float32.</summary>
public static class SinCosPositionEmbedding
{
    /// <summary>
    /// [G·G, E] in row-major token order: for token (i, j) concat(sin(j·ω), cos(j·ω), sin(i·ω), cos(i·ω)) with
    /// ω_k = 10000^(−k/(E/4)). The first half encodes the column index.
    /// </summary>
    public static Tensor Create2D(long embedDim, long gridSide)
    {
        if (embedDim <= 0 || embedDim % 4 != 0) throw new ArgumentException($"sin-cos embedding width must be a positive multiple of 4, got {embedDim}");
        using var scope = NewDisposeScope();
        var quarter = embedDim / 4;
        var omega = arange(quarter, dtype: float64) / (embedDim / 2.0 / 2.0);
        omega = pow(tensor(10000.0, float64), omega).reciprocal();
        var positions = arange(gridSide, dtype: float64);
        var columns = positions.unsqueeze(0).expand(gridSide, gridSide).reshape(-1); // j
        var rows = positions.unsqueeze(1).expand(gridSide, gridSide).reshape(-1);    // i
        var columnAngles = columns.unsqueeze(1) * omega.unsqueeze(0);
        var rowAngles = rows.unsqueeze(1) * omega.unsqueeze(0);
        var table = cat([columnAngles.sin(), columnAngles.cos(), rowAngles.sin(), rowAngles.cos()], 1);
        return table.to(float32).MoveToOuterDisposeScope();
    }

    /// <summary>The same table with an all-zero first row for a CLS slot when <paramref name="withClsRow"/> (MAE, decoder).</summary>
    public static Tensor Create2D(long embedDim, long gridSide, bool withClsRow)
    {
        if (!withClsRow) return Create2D(embedDim, gridSide);
        using var table = Create2D(embedDim, gridSide);
        using var clsRow = zeros(1, embedDim, dtype: float32);
        return cat([clsRow, table], 0);
    }
}
