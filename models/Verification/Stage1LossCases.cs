using System.Text.Json;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>What the Stage 1 loss checkers share: recognising a case by case.json's "case" and the comparisons they need.</summary>
internal static class Stage1LossCases
{
    /// <summary>True when case.json names the case (its "case" field), whatever the folder is called.</summary>
    public static bool IsCase(ReferenceCase referenceCase, string caseName) =>
        referenceCase.Root.TryGetProperty("case", out var name) && name.ValueKind == JsonValueKind.String && name.GetString() == caseName;

    /// <summary>A comparison that passes only when every value is bit-identical (exact reference operations).</summary>
    public static OutputComparison CompareExactly(string name, Tensor actual, Tensor expected, double tolerance)
    {
        var comparison = OutputComparison.Compare(name, actual, expected, tolerance);
        return comparison.MaxAbsoluteError == 0 ? comparison : comparison with { MaxRelativeError = double.PositiveInfinity };
    }

    /// <summary>Compares a tensor against an absolute bound: the reported relative error is max |ours − ref| / scale.</summary>
    public static OutputComparison CompareOnScale(string name, Tensor actual, Tensor expected, double scale, double tolerance)
    {
        var comparison = OutputComparison.Compare(name, actual, expected, tolerance);
        return comparison with { MaxRelativeError = scale > 0 ? comparison.MaxAbsoluteError / scale : comparison.MaxAbsoluteError };
    }
}
