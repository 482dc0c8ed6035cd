namespace RAE.Models.Verification;

/// <summary>Runs a reference case through the first checker that understands it.</summary>
public sealed class ReferenceVerifier
{
    public const double DefaultTolerance = 1e-5;

    private readonly IReadOnlyList<IReferenceCaseChecker> _checkers;

    public ReferenceVerifier(IEnumerable<IReferenceCaseChecker> checkers) => _checkers = checkers.ToList();

    /// <summary>Every checker this library ships, in the order they are tried.</summary>
    public static ReferenceVerifier CreateDefault() => new(ReferenceCheckers.All());

    public IReadOnlyList<OutputComparison> Verify(string caseDirectory, double tolerance = DefaultTolerance)
    {
        var referenceCase = ReferenceCase.Open(caseDirectory);
        var checker = _checkers.FirstOrDefault(c => c.CanCheck(referenceCase))
            ?? throw new NotSupportedException(
                $"reference case '{referenceCase.Name}' (model '{referenceCase.Model}') holds nothing this build can check");
        return checker.Check(referenceCase, tolerance);
    }
}
