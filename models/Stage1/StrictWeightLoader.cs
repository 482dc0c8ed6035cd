using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Stage1;

/// <summary>
/// Copies tensors into a module's state by exact key. Every key of the module must be present with the same shape;
/// keys in the file that the module does not have are an error unless listed as ignorable.
/// </summary>
public static class StrictWeightLoader
{
    /// <summary>
    /// Loads <paramref name="file"/> (safetensors). Only keys under <paramref name="prefix"/> are considered (the
    /// prefix is stripped; keys outside it, e.g. SigLIP's <c>text_model.*</c> when the prefix is
    /// <c>vision_model.</c>, are other models' weights and are skipped). Stripped keys accepted by
    /// <paramref name="isIgnorable"/> are skipped too.
    /// </summary>
    public static void Load(nn.Module module, string file, string prefix = "", Func<string, bool>? isIgnorable = null,
        Func<string, bool>? isOptional = null)
    {
        var tensors = SafeTensors.Load(file);
        try
        {
            Load(module, tensors, file, prefix, isIgnorable, isOptional);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <remarks>Keys accepted by <paramref name="isOptional"/> keep their constructed value when the file lacks them.</remarks>
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source, string prefix = "",
        Func<string, bool>? isIgnorable = null, Func<string, bool>? isOptional = null)
    {
        var selected = tensors.Where(pair => pair.Key.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(pair => pair.Key[prefix.Length..], pair => pair.Value, StringComparer.Ordinal);
        var targets = module.state_dict()
            .Where(pair => selected.ContainsKey(pair.Key) || !(isOptional?.Invoke(pair.Key) ?? false))
            .ToDictionary(pair => pair.Key, pair => pair.Value, StringComparer.Ordinal);

        var missing = targets.Keys.Where(key => !selected.ContainsKey(key)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException(
                $"{source}: missing weight '{prefix}{missing[0]}'" + (missing.Count > 1 ? $" (and {missing.Count - 1} more: {string.Join(", ", missing.Skip(1).Take(5).Select(k => prefix + k))})" : ""));
        var unexpected = selected.Keys.Where(key => !targets.ContainsKey(key) && !(isIgnorable?.Invoke(key) ?? false)).ToList();
        if (unexpected.Count > 0)
            throw new InvalidDataException(
                $"{source}: unexpected weight '{prefix}{unexpected[0]}' that this model does not have" + (unexpected.Count > 1 ? $" (and {unexpected.Count - 1} more)" : ""));

        foreach (var (key, target) in targets)
        {
            var stored = selected[key];
            if (!stored.shape.SequenceEqual(target.shape))
                throw new InvalidDataException(
                    $"{source}: weight '{prefix}{key}' has shape [{string.Join(",", stored.shape)}], the model expects [{string.Join(",", target.shape)}]");
        }
        using var noGrad = no_grad();
        foreach (var (key, target) in targets)
        {
            using var converted = selected[key].to(target.dtype, target.device);
            target.copy_(converted);
        }
    }

    /// <summary>
    /// The common prefix of a checkpoint: the part before <paramref name="anchorKey"/> in the first key that ends with
    /// it (e.g. "vision_model." for SigLIP, "vit." for ViTMAEForPreTraining, "" for a bare model).
    /// </summary>
    public static string DetectPrefix(IEnumerable<string> keys, string anchorKey, string source)
    {
        var candidates = keys.Where(k => k.EndsWith(anchorKey, StringComparison.Ordinal))
            .Select(k => k[..^anchorKey.Length])
            .Where(p => p.Length == 0 || p.EndsWith('.'))
            .OrderBy(p => p.Length)
            .ToList();
        return candidates.Count > 0
            ? candidates[0]
            : throw new InvalidDataException($"{source}: no weight named '{anchorKey}' (with any prefix); is this the right model file?");
    }
}
