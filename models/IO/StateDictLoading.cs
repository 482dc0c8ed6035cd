using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>Strict state-dict loading with one error that lists every problem, like PyTorch's load_state_dict(strict=True).</summary>
public static class StateDictLoading
{
    /// <summary>
    /// Copies every tensor of <paramref name="stateDict"/> into the module's parameters and persistent buffers (no_grad,
    /// converting dtype and device to the module's). Throws one InvalidDataException naming <paramref name="source"/> and
    /// listing all missing keys, unexpected keys and mis-shaped keys (with both shapes); nothing is copied then.
    /// </summary>
    public static void LoadStrict(nn.Module module, IReadOnlyDictionary<string, Tensor> stateDict, string source)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(stateDict);
        var targets = module.state_dict();
        var missing = targets.Keys.Where(k => !stateDict.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var unexpected = stateDict.Keys.Where(k => !targets.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var misShaped = targets
            .Where(entry => stateDict.TryGetValue(entry.Key, out var given) && !given.shape.SequenceEqual(entry.Value.shape))
            .OrderBy(entry => entry.Key, StringComparer.Ordinal)
            .Select(entry => $"{entry.Key}: checkpoint [{string.Join(", ", stateDict[entry.Key].shape)}], model [{string.Join(", ", entry.Value.shape)}]")
            .ToList();
        if (missing.Count + unexpected.Count + misShaped.Count > 0)
        {
            var problems = new List<string>();
            if (missing.Count > 0) problems.Add($"missing keys ({missing.Count}): {string.Join(", ", missing)}");
            if (unexpected.Count > 0) problems.Add($"unexpected keys ({unexpected.Count}): {string.Join(", ", unexpected)}");
            if (misShaped.Count > 0) problems.Add($"mis-shaped keys ({misShaped.Count}): {string.Join("; ", misShaped)}");
            throw new InvalidDataException($"{source}: state dict does not match {module.GetName()}: {string.Join(" | ", problems)}");
        }
        using var guard = no_grad();
        foreach (var (key, target) in targets) target.copy_(stateDict[key]);
    }
}
