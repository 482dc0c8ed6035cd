using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

public sealed partial class Stage2ModelCaseChecker
{
    private static List<OutputComparison> CheckLightningDiT(ReferenceCase referenceCase, TensorFile io, double tolerance) =>
        throw new NotSupportedException($"{referenceCase.Name}: LightningDiT is not ported yet");
}
