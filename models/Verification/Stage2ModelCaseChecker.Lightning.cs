using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using RAE.Models.IO;
using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

public sealed partial class Stage2ModelCaseChecker
{
    /// <summary>
    /// forward, then every call named in case.json "calls" that is a forward_with_cfg: its cfg_scale, list of ranges and
    /// interval_cfg are read from the recorded call text, its times from io tensor "t2_&lt;name&gt;" (or "t2").
    /// </summary>
    private static List<OutputComparison> CheckLightningDiT(ReferenceCase referenceCase, TensorFile io, double tolerance)
    {
        var weightsPath = referenceCase.PathOf("weights.safetensors");
        using var model = new LightningDiT(LightningDiTOptions.FromReferenceParams(referenceCase.Root.GetProperty("params")));
        using (var weights = new TensorFile(weightsPath)) StateDictLoading.LoadStrict(model, weights.Tensors, weightsPath);
        model.eval();

        var results = new List<OutputComparison>();
        if (io.Has("forward")) results.Add(OutputComparison.Compare("forward", model.forward(io["x"], io["t"], io["y"]), io["forward"], tolerance));
        if (!referenceCase.Root.TryGetProperty("calls", out var calls)) return results;
        foreach (var call in calls.EnumerateObject())
        {
            var text = call.Value.GetString() ?? "";
            if (!text.Contains("forward_with_cfg(", StringComparison.Ordinal) || !io.Has(call.Name)) continue;
            var times = io.Has("t2_" + call.Name) ? io["t2_" + call.Name] : io["t2"];
            var actual = model.ForwardWithCfg(io["x2"], times, io["y2"],
                ParseCallArgument(text, "cfg_scale", referenceCase.Name),
                ParseRanges(text, referenceCase.Name),
                ParseCallArgument(text, "interval_cfg", referenceCase.Name));
            results.Add(OutputComparison.Compare(call.Name, actual, io[call.Name], tolerance));
        }
        return results;
    }

    /// <summary>Reads cfg_interval=[(lo, hi), ...] from a recorded Python call.</summary>
    private static List<(double Low, double High)> ParseRanges(string call, string caseName)
    {
        var list = Regex.Match(call, @"cfg_interval=\[(?<body>[^\]]*)\]");
        if (!list.Success) throw new InvalidDataException($"{caseName}: call '{call}' has no cfg_interval=[(lo, hi), ...] list");
        var ranges = new List<(double, double)>();
        foreach (Match pair in Regex.Matches(list.Groups["body"].Value, @"\(\s*(?<lo>[-0-9.eE+]+)\s*,\s*(?<hi>[-0-9.eE+]+)\s*\)"))
            ranges.Add((double.Parse(pair.Groups["lo"].Value, CultureInfo.InvariantCulture), double.Parse(pair.Groups["hi"].Value, CultureInfo.InvariantCulture)));
        return ranges;
    }
}
