namespace RAE.Models.Verification;

/// <summary>
/// Checks one kind of reference case (a model class, the transport, the sampler, ...). Each checker builds what the
/// case describes, loads its weights strictly, runs the reference calls and compares every expected output present.
/// </summary>
public interface IReferenceCaseChecker
{
    /// <summary>True when this checker understands the case (usually decided by case.json's "model" or folder content).</summary>
    bool CanCheck(ReferenceCase referenceCase);

    /// <summary>Compares every output it can check. Returns an empty list when the case holds nothing it can check.</summary>
    IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance);
}
