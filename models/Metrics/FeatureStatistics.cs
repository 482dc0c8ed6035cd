using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Metrics;

/// <summary>
/// Streaming, mergeable first and second moments of feature vectors, in float64 (eval-spec §4.1). Holds the count, the
/// float64 mean and the co-moment Σ (x − mean)(x − mean)ᵀ; batches and partial results merge with Chan's pairwise
/// update, so the order and the split of the data change only rounding. <see cref="ToStatistics"/> gives the
/// reference's statistics: <c>mu</c> the float64 mean and <c>sigma = np.cov(features, rowvar=False)</c> (ddof 1).
/// It also keeps the float32 column sums that torch-fidelity's float32 mean is made of (rFID path).
/// </summary>
public sealed class FeatureMoments : IDisposable
{
    private Tensor _mean;
    private Tensor _comoment;
    private readonly float[] _float32Sum;

    private FeatureMoments(long count, Tensor mean, Tensor comoment, float[] float32Sum)
    {
        // Owned by this object for its lifetime, whatever dispose scope was open when they were made.
        Count = count;
        _mean = mean.DetachFromDisposeScope();
        _comoment = comoment.DetachFromDisposeScope();
        _float32Sum = float32Sum;
    }

    public long Count { get; private set; }

    public long Dimension => _mean.shape[0];

    /// <summary>The float64 mean [D] (owned by this object).</summary>
    public Tensor Mean => _mean;

    /// <summary>Σ (x − mean)(x − mean)ᵀ, float64 [D, D] (owned by this object).</summary>
    public Tensor Comoment => _comoment;

    /// <summary>The float32 column sums, accumulated row by row as numpy's <c>np.mean(axis=0)</c> of float32 does (a copy).</summary>
    public Tensor Float32Sum() => tensor(_float32Sum.ToArray(), [_float32Sum.Length]);

    /// <summary>No features yet, of dimension D.</summary>
    public static FeatureMoments Empty(long dimension)
    {
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "feature dimension must be positive");
        return new FeatureMoments(0, zeros(dimension, dtype: ScalarType.Float64), zeros(dimension, dimension, dtype: ScalarType.Float64),
            new float[dimension]);
    }

    /// <summary>The moments of a [N, D] feature batch, computed as numpy does: <c>.double()</c>, then centred on the float64 mean.</summary>
    public static FeatureMoments FromFeatures(Tensor features)
    {
        ValidateFeatures(features, "features");
        using var scope = NewDisposeScope();
        var asDouble = features.detach().cpu().to(ScalarType.Float64);
        var mean = asDouble.mean([0]);
        var centred = asDouble - mean;
        var comoment = centred.t().matmul(centred);
        var float32Sum = Float32ColumnSums(features.detach().cpu().to(ScalarType.Float32).contiguous());
        return new FeatureMoments(features.shape[0], mean.MoveToOuterDisposeScope(), comoment.MoveToOuterDisposeScope(), float32Sum);
    }

    /// <summary>Restores moments saved elsewhere (for example a finished evaluation unit); copies the tensors.</summary>
    public static FeatureMoments FromParts(long count, Tensor mean, Tensor comoment, Tensor float32Sum)
    {
        if (float32Sum.dim() != 1 || float32Sum.shape[0] != mean.shape[0])
            throw new ArgumentException($"float32 sums [{string.Join(", ", float32Sum.shape)}] do not match mean [{string.Join(", ", mean.shape)}]");
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "count must not be negative");
        if (mean.dim() != 1 || comoment.dim() != 2 || comoment.shape[0] != mean.shape[0] || comoment.shape[1] != mean.shape[0])
            throw new ArgumentException(
                $"mean [{string.Join(", ", mean.shape)}] and co-moment [{string.Join(", ", comoment.shape)}] are not a [D] vector and a [D, D] matrix");
        using var sums = float32Sum.detach().cpu().to(ScalarType.Float32).contiguous();
        return new FeatureMoments(count, mean.detach().cpu().to(ScalarType.Float64).clone(), comoment.detach().cpu().to(ScalarType.Float64).clone(),
            sums.data<float>().ToArray());
    }

    /// <summary>Adds a [N, D] batch of features. Its rows continue the float32 column sums in order, as numpy's would.</summary>
    public void Add(Tensor features)
    {
        using var batch = FromFeatures(features);
        if (batch.Dimension != Dimension)
            throw new ArgumentException($"cannot add features of dimension {batch.Dimension} to dimension {Dimension}", nameof(features));
        var sums = _float32Sum.ToArray();
        using (var asFloat32 = features.detach().cpu().to(ScalarType.Float32).contiguous())
            AccumulateColumnSums(asFloat32, sums);
        Merge(batch);
        sums.CopyTo(_float32Sum, 0);
    }

    /// <summary>Merges other moments into these (Chan, Golub and LeVeque's pairwise update).</summary>
    public void Merge(FeatureMoments other)
    {
        if (other.Dimension != Dimension)
            throw new ArgumentException($"cannot merge features of dimension {other.Dimension} into dimension {Dimension}", nameof(other));
        if (other.Count == 0) return;
        for (var j = 0; j < _float32Sum.Length; j++) _float32Sum[j] += other._float32Sum[j];
        using var scope = NewDisposeScope();
        if (Count == 0)
        {
            Replace(other.Count, other._mean.clone().MoveToOuterDisposeScope(), other._comoment.clone().MoveToOuterDisposeScope());
            return;
        }
        var total = Count + other.Count;
        var delta = other._mean - _mean;
        var mean = _mean + delta * ((double)other.Count / total);
        var comoment = _comoment + other._comoment + delta.outer(delta) * ((double)Count * other.Count / total);
        Replace(total, mean.MoveToOuterDisposeScope(), comoment.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The reference statistics: <c>mu</c> (float64 mean) and <c>sigma</c> = co-moment / (N − 1), as <c>np.cov</c>
    /// computes it. Needs at least two feature vectors (numpy would divide by zero). The caller owns the result.
    /// </summary>
    public FidStatistics ToStatistics()
    {
        if (Count < 2)
            throw new InvalidOperationException($"a covariance with ddof 1 needs at least 2 feature vectors, have {Count}");
        return new FidStatistics(_mean.clone(), _comoment * (1.0 / (Count - 1)));
    }

    /// <summary>
    /// The float32 mean of torch-fidelity's rFID path: <c>np.mean</c> of float32 features along axis 0, which sums the
    /// rows in order in float32 and divides by N in float32. Bit-exact when the features were added in order.
    /// </summary>
    public Tensor MeanFloat32()
    {
        if (Count == 0) throw new InvalidOperationException("the mean of no features is undefined");
        var count = (float)Count;
        return tensor(_float32Sum.Select(sum => sum / count).ToArray(), [_float32Sum.Length]);
    }

    private static float[] Float32ColumnSums(Tensor features)
    {
        var sums = new float[features.shape[1]];
        AccumulateColumnSums(features, sums);
        return sums;
    }

    private static void AccumulateColumnSums(Tensor features, float[] sums)
    {
        var dimension = sums.Length;
        var values = features.data<float>().ToArray();
        for (long row = 0, offset = 0; row < features.shape[0]; row++, offset += dimension)
            for (var j = 0; j < dimension; j++) sums[j] += values[offset + j];
    }

    public void Dispose()
    {
        _mean.Dispose();
        _comoment.Dispose();
    }

    private void Replace(long count, Tensor mean, Tensor comoment)
    {
        _mean.Dispose();
        _comoment.Dispose();
        Count = count;
        _mean = mean.DetachFromDisposeScope();
        _comoment = comoment.DetachFromDisposeScope();
    }

    private static void ValidateFeatures(Tensor features, string name)
    {
        if (features.dim() != 2)
            throw new ArgumentException($"{name} must be [N, D], got [{string.Join(", ", features.shape)}]", name);
        if (!features.is_floating_point())
            throw new ArgumentException($"{name} must be floating point, got {features.dtype}", name);
        if (features.shape[0] == 0 || features.shape[1] == 0)
            throw new ArgumentException($"{name} is empty: [{string.Join(", ", features.shape)}]", name);
    }
}
