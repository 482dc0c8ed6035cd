using RAE.Models.Stage1.Losses;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'lpips_vgg' reference case: the full state dict (weights.safetensors plus the oracle-hash-v1 VGG16 conv
/// weights, each checked against its SHA-256) is loaded strictly by the reference keys, then per-sample, mean and sum
/// distances and every recorded trace are compared.
/// </summary>
public sealed class LpipsCaseChecker : IReferenceCaseChecker
{
    public const string ModelName = "disc.lpips.LPIPS";

    public bool CanCheck(ReferenceCase referenceCase) => referenceCase.Model == ModelName && referenceCase.Has("io.safetensors");

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        using var lpips = Load(referenceCase);
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var results = new List<OutputComparison>();
        var perSample = lpips.PerSample(io["in0"], io["in1"], (name, traced) =>
        {
            var key = $"trace.{name}";
            if (io.Has(key)) results.Add(OutputComparison.Compare(key, traced, io[key], tolerance));
        });
        if (io.Has("per_sample")) results.Add(OutputComparison.Compare("per_sample", perSample, io["per_sample"], tolerance));
        if (io.Has("mean")) results.Add(OutputComparison.Compare("mean", lpips.Loss(io["in0"], io["in1"]).reshape(1), io["mean"], tolerance));
        if (io.Has("sum")) results.Add(OutputComparison.Compare("sum", perSample.sum().reshape(1), io["sum"], tolerance));
        return results;
    }

    /// <summary>The case's LPIPS: stored plus generated weights, loaded strictly, in eval mode.</summary>
    public static Lpips Load(ReferenceCase referenceCase)
    {
        var stateDict = OracleHashWeights.LoadFullStateDict(referenceCase);
        var lpips = new Lpips();
        try
        {
            lpips.LoadReferenceStateDict(stateDict, referenceCase.PathOf("weights.safetensors") + " + hash_init");
            return lpips;
        }
        catch
        {
            lpips.Dispose();
            throw;
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
    }
}
