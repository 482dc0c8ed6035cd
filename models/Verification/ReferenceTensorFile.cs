using System.Text.Json;
using RAE.Models.IO;
using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>The tensors of one safetensors file of a reference case, disposed together; missing names are clear errors.</summary>
internal sealed class ReferenceTensorFile(string path) : IDisposable
{
    public string Path { get; } = path;

    public Dictionary<string, Tensor> Tensors { get; } = SafeTensors.Load(path);

    public bool Has(string name) => Tensors.ContainsKey(name);

    public Tensor this[string name] => Tensors.TryGetValue(name, out var tensor)
        ? tensor : throw new InvalidDataException($"{Path}: tensor '{name}' is missing");

    public void Dispose()
    {
        foreach (var tensor in Tensors.Values) tensor.Dispose();
    }

    /// <summary>Builds DiT^DH from reference constructor params and loads a weights file strictly (eval mode).</summary>
    public static DiTwDDTHead LoadDiTwDDTHead(JsonElement parameters, string weightsPath)
    {
        var model = new DiTwDDTHead(DiTwDDTHeadOptions.FromReferenceParams(parameters));
        try
        {
            using var weights = new ReferenceTensorFile(weightsPath);
            StateDictLoading.LoadStrict(model, weights.Tensors, weightsPath);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>True when case.json's "model" names DiT^DH, possibly with a suffix such as " (ddt_tiny weights)".</summary>
    public static bool NamesDiTwDDTHead(ReferenceCase referenceCase) =>
        referenceCase.Model.StartsWith(Stage2ModelCaseChecker.DiTwDDTHeadModel, StringComparison.Ordinal);
}
