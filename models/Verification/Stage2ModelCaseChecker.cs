using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using RAE.Models.IO;
using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks reference cases of the Stage-2 models (DiT^DH and LightningDiT): builds the model from case.json "params",
/// loads weights.safetensors strictly, switches to eval mode and compares every expected output in io.safetensors.
/// </summary>
public sealed partial class Stage2ModelCaseChecker : IReferenceCaseChecker
{
    public const string DiTwDDTHeadModel = "stage2.models.DDT.DiTwDDTHead";
    public const string LightningDiTModel = "stage2.models.lightningDiT.LightningDiT";

    public bool CanCheck(ReferenceCase referenceCase) =>
        referenceCase.Model is DiTwDDTHeadModel or LightningDiTModel && referenceCase.Has("weights.safetensors") && referenceCase.Has("io.safetensors");

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        RequireEvalMode(referenceCase.Root, referenceCase.Name);
        using var io = new TensorFile(referenceCase.PathOf("io.safetensors"));
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        return referenceCase.Model == DiTwDDTHeadModel
            ? CheckDiTwDDTHead(referenceCase, io, tolerance)
            : CheckLightningDiT(referenceCase, io, tolerance);
    }

    private static List<OutputComparison> CheckDiTwDDTHead(ReferenceCase referenceCase, TensorFile io, double tolerance)
    {
        using var model = LoadDiTwDDTHead(referenceCase.Root.GetProperty("params"), referenceCase.PathOf("weights.safetensors"));
        var results = new List<OutputComparison>();
        void Compare(string name, Func<Tensor> run)
        {
            if (io.Has(name)) results.Add(OutputComparison.Compare(name, run(), io[name], tolerance));
        }

        Compare("forward", () => model.forward(io["x"], io["t"], io["y"]));
        Compare("forward_x2", () => model.forward(io["x2"], io["t2"], io["y2"]));
        var cfgScale = referenceCase.Root.TryGetProperty("cfg_scale", out var scale) ? scale.GetDouble() : 1.0;
        var interval = ReadInterval(referenceCase.Root);
        Compare("forward_with_cfg", () => model.ForwardWithCfg(io["x2"], io["t2"], io["y2"], cfgScale, interval));

        if (referenceCase.Root.TryGetProperty("guidance_model", out var guidanceCase))
        {
            var weights = guidanceCase.TryGetProperty("weights", out var file) ? file.GetString()! : "guidance_weights.safetensors";
            RequireEvalMode(guidanceCase, referenceCase.Name + " guidance_model");
            var guidanceModelName = guidanceCase.GetProperty("model").GetString();
            if (guidanceModelName != DiTwDDTHeadModel)
                throw new NotSupportedException($"{referenceCase.Name}: guidance model '{guidanceModelName}' is not supported");
            using var guide = LoadDiTwDDTHead(guidanceCase.GetProperty("params"), referenceCase.PathOf(weights));
            Compare("guidance_forward_x2", () => guide.forward(io["x2"], io["t2"], io["y2"]));
            Compare("forward_with_autoguidance", () => model.ForwardWithAutoguidance(
                io["x2"], io["t2"], io["y2"], cfgScale, (x, t, y) => guide.forward(x, t, y), interval));
        }
        return results;
    }

    private static DiTwDDTHead LoadDiTwDDTHead(JsonElement parameters, string weightsPath)
    {
        var model = new DiTwDDTHead(DiTwDDTHeadOptions.FromReferenceParams(parameters));
        try
        {
            using var weights = new TensorFile(weightsPath);
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

    private static (double, double)? ReadInterval(JsonElement root)
    {
        if (!root.TryGetProperty("cfg_interval", out var interval)) return null;
        return (interval[0].GetDouble(), interval[1].GetDouble());
    }

    private static void RequireEvalMode(JsonElement root, string name)
    {
        if (root.TryGetProperty("mode", out var mode) && mode.GetString() != "eval")
            throw new NotSupportedException($"{name}: only eval-mode cases can be checked (mode '{mode.GetString()}')");
    }

    private static double ParseCallArgument(string call, string argument, string caseName)
    {
        var match = Regex.Match(call, $@"\b{Regex.Escape(argument)}=(-?[0-9.eE+-]+)");
        if (!match.Success) throw new InvalidDataException($"{caseName}: call '{call}' has no numeric {argument}=");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>The tensors of one safetensors file, disposed together.</summary>
    private sealed class TensorFile(string path) : IDisposable
    {
        public Dictionary<string, Tensor> Tensors { get; } = SafeTensors.Load(path);

        public bool Has(string name) => Tensors.ContainsKey(name);

        public Tensor this[string name] => Tensors.TryGetValue(name, out var tensor)
            ? tensor : throw new InvalidDataException($"{path}: tensor '{name}' is missing");

        public void Dispose()
        {
            foreach (var tensor in Tensors.Values) tensor.Dispose();
        }
    }
}
