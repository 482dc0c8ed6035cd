using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>One expected output compared with ours: errors are max |ours - ref| and that divided by max |ref|.</summary>
public sealed record OutputComparison(string Name, long[] Shape, double MaxAbsoluteError, double MaxRelativeError, double Tolerance)
{
    public bool Passed => MaxRelativeError <= Tolerance && double.IsFinite(MaxRelativeError);

    /// <summary>Compares in float64; a shape mismatch is reported as an infinite error, never silently broadcast.</summary>
    public static OutputComparison Compare(string name, Tensor actual, Tensor expected, double tolerance)
    {
        using var scope = NewDisposeScope();
        if (!actual.shape.SequenceEqual(expected.shape))
            throw new InvalidDataException(
                $"output '{name}': shape [{string.Join(",", actual.shape)}] differs from the reference [{string.Join(",", expected.shape)}]");
        var ours = actual.detach().cpu().to(float64);
        var reference = expected.detach().cpu().to(float64);
        var maxAbs = (ours - reference).abs().max().item<double>();
        var scale = reference.abs().max().item<double>();
        var relative = scale > 0 ? maxAbs / scale : maxAbs;
        return new OutputComparison(name, expected.shape, maxAbs, relative, tolerance);
    }
}
