namespace RAE.Models.Verification;

/// <summary>The registry of checkers. Add a checker here when a new kind of reference case is supported.</summary>
public static class ReferenceCheckers
{
    public static IReadOnlyList<IReferenceCaseChecker> All() =>
    [
        new Stage1DecoderCaseChecker(),
        new Stage2ModelCaseChecker(),
        new TransportCaseChecker(),
        new SamplerCaseChecker(),
        new PtFormatsCaseChecker(),
        new GanLossesCaseChecker(),
        new DiffAugCaseChecker(),
        new LpipsCaseChecker(),
        new AdaptiveWeightCaseChecker(),
        new DinoDiscriminatorCaseChecker(),
        new FrechetDistanceCaseChecker(),
        new ReconstructionMetricsCaseChecker(),
        new FidInceptionCaseChecker(),
    ];
}
