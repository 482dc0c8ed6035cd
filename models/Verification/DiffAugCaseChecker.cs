using System.Text.Json;
using RAE.Models.Stage1.Losses;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'diffaug' reference case: every variant of case.json → variants runs <see cref="DiffAug"/> with the recorded
/// draws injected, must consume exactly those draws, and its output is compared with <c>{variant}.out</c>.
/// </summary>
public sealed class DiffAugCaseChecker : IReferenceCaseChecker
{
    public const string ModelName = "disc.diffaug.DiffAug";

    public bool CanCheck(ReferenceCase referenceCase) =>
        referenceCase.Model == ModelName && referenceCase.Root.TryGetProperty("variants", out _) && referenceCase.Has("io.safetensors");

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        using var scope = NewDisposeScope();
        var results = new List<OutputComparison>();
        foreach (var variant in referenceCase.Root.GetProperty("variants").EnumerateObject())
        {
            var outputName = $"{variant.Name}.out";
            if (!io.Has(outputName)) continue;
            var settings = variant.Value.GetProperty("DiffAug");
            var augment = new DiffAug(settings.GetProperty("prob").GetDouble(), settings.GetProperty("cutout").GetDouble());
            var draws = RecordedDraws(variant.Value.GetProperty("draws"), io);
            var output = augment.Apply(io[variant.Value.GetProperty("input").GetString()!], draws);
            if (draws.Used != draws.Count)
                throw new InvalidDataException($"{referenceCase.Name}/{variant.Name}: DiffAug used {draws.Used} of the {draws.Count} recorded draws");
            results.Add(OutputComparison.Compare(outputName, output, io[outputName], tolerance));
        }
        return results;
    }

    /// <summary>The recorded draws of a case.json list of <c>{index, key}</c> entries, in call order.</summary>
    internal static RecordedUniformDraws RecordedDraws(JsonElement drawList, ReferenceTensorFile io)
    {
        var draws = drawList.EnumerateArray().ToList();
        return new RecordedUniformDraws(draws.OrderBy(d => d.GetProperty("index").GetInt32()).Select(d => io[d.GetProperty("key").GetString()!]).ToList());
    }
}
