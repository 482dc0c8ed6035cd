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
        LoadStrict(module, stateDict, source, keyPrefix: "", isIgnorable: null, isOptional: null);
    }

    /// <summary>
    /// The general form. Only keys of <paramref name="tensors"/> under <paramref name="keyPrefix"/> are considered (the
    /// prefix is stripped; keys outside it, e.g. SigLIP's <c>text_model.*</c> under <c>vision_model.</c>, belong to other
    /// models and are skipped). Stripped file keys accepted by <paramref name="isIgnorable"/> are not reported as
    /// unexpected; module keys accepted by <paramref name="isOptional"/> keep their constructed value when absent.
    /// </summary>
    public static void LoadStrict(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source, string keyPrefix,
        Func<string, bool>? isIgnorable, Func<string, bool>? isOptional)
    {
        var given = tensors.Where(pair => pair.Key.StartsWith(keyPrefix, StringComparison.Ordinal))
            .ToDictionary(pair => pair.Key[keyPrefix.Length..], pair => pair.Value, StringComparer.Ordinal);
        var targets = module.state_dict()
            .Where(pair => given.ContainsKey(pair.Key) || !(isOptional?.Invoke(pair.Key) ?? false))
            .ToDictionary(pair => pair.Key, pair => pair.Value, StringComparer.Ordinal);

        string Name(string key) => $"'{keyPrefix}{key}'";
        static string Shape(long[] shape) => $"[{string.Join(",", shape)}]";
        var missing = targets.Keys.Where(k => !given.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).Select(Name).ToList();
        var unexpected = given.Keys.Where(k => !targets.ContainsKey(k) && !(isIgnorable?.Invoke(k) ?? false))
            .OrderBy(k => k, StringComparer.Ordinal).Select(Name).ToList();
        var misShaped = targets
            .Where(entry => given.TryGetValue(entry.Key, out var stored) && !stored.shape.SequenceEqual(entry.Value.shape))
            .OrderBy(entry => entry.Key, StringComparer.Ordinal)
            .Select(entry => $"{Name(entry.Key)}: checkpoint {Shape(given[entry.Key].shape)}, model {Shape(entry.Value.shape)}")
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
        foreach (var (key, target) in targets) target.copy_(given[key]);
    }
}
