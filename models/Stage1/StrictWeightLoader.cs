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
        Func<string, bool>? isIgnorable = null, Func<string, bool>? isOptional = null) =>
        StateDictLoading.LoadStrict(module, tensors, source, prefix, isIgnorable, isOptional);

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
