using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>Which part of a checkpoint holds the weights.</summary>
public enum CheckpointEntry
{
    /// <summary>The reference rule: <c>ema</c> if present; a file with <c>model</c> but no <c>ema</c> is refused; otherwise the file itself.</summary>
    Auto,

    /// <summary>The <c>ema</c> entry of a training checkpoint (an error if there is none).</summary>
    Ema,

    /// <summary>The <c>model</c> entry of a training checkpoint: the raw, non-EMA weights (an error if there is none).</summary>
    Model,

    /// <summary>The file itself is the state dict.</summary>
    Root,
}

public sealed record CheckpointLoadOptions
{
    public static readonly CheckpointLoadOptions Default = new();

    public CheckpointEntry Entry { get; init; } = CheckpointEntry.Auto;

    /// <summary>Tolerate unknown Python globals elsewhere in a .pt file (e.g. an argparse.Namespace beside the weights).</summary>
    public bool AllowUnknownGlobals { get; init; }

    /// <summary>What the file may declare before it is refused (e.g. a larger <see cref="ReaderLimits.MaxViewExpansion"/> for saved expanded views).</summary>
    public ReaderLimits Limits { get; init; } = ReaderLimits.Default;
}

/// <summary>
/// Loads weights the way the reference's <c>instantiate_from_config</c> does (§1.1): <c>.safetensors</c> files or
/// <c>torch.save</c> files (<c>.pt</c>, <c>.pth</c>, <c>.ckpt</c>, …); keys lose any <c>module.</c> / <c>_orig_mod.</c>
/// prefixes (DDP / torch.compile wrappers). Saving always writes safetensors with the reference key names.
/// </summary>
public static class CheckpointLoader
{
    private static readonly string[] WrapperPrefixes = ["module.", "_orig_mod."];

    /// <summary>Loads a state dict onto the CPU, in file order. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> LoadStateDict(string path, CheckpointLoadOptions? options = null)
    {
        options ??= CheckpointLoadOptions.Default;
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint not found: {path}", path);
        if (IsSafeTensors(path))
        {
            if (options.Entry is CheckpointEntry.Ema or CheckpointEntry.Model)
                throw new CheckpointFormatException(path, $"a safetensors file holds a single state dict; entry '{options.Entry}' cannot be selected (use Auto or Root)");
            return StripWrapperPrefixes(SafeTensors.Load(path, options.Limits), path);
        }

        using var checkpoint = PyTorchCheckpoint.Open(path, options.AllowUnknownGlobals, options.Limits);
        var stateDict = SelectStateDict(checkpoint.Root, options.Entry, path);
        var references = new List<KeyValuePair<string, TensorReference>>(stateDict.Count);
        foreach (var (key, value) in stateDict)
        {
            if (key is not string name) throw new CheckpointFormatException(path, $"state dict key {Unpickler.Describe(key)} is not a string");
            if (value is not TensorReference reference)
                throw new CheckpointFormatException(path, $"state dict entry '{name}' is {Unpickler.Describe(value)}, not a tensor");
            references.Add(new(name, reference));
        }

        var tensors = new List<KeyValuePair<string, Tensor>>(references.Count);
        try
        {
            foreach (var (name, reference) in references) tensors.Add(new(name, checkpoint.ReadTensor(reference)));
            return StripWrapperPrefixes(tensors, path);
        }
        catch
        {
            foreach (var (_, tensor) in tensors) tensor.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a checkpoint into a module strictly (every key present, none unexpected, shapes equal — §1.1), converting
    /// dtype and device to the module's. The loaded tensors are released afterwards.
    /// </summary>
    public static void LoadInto(nn.Module module, string path, CheckpointLoadOptions? options = null)
    {
        var stateDict = LoadStateDict(path, options);
        try
        {
            StateDictLoading.LoadStrict(module, stateDict, path);
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
    }

    /// <summary>Removes leading <c>module.</c> and <c>_orig_mod.</c> prefixes, repeatedly (as extract_decoder.py does).</summary>
    public static string StripWrapperPrefixes(string key)
    {
        var stripped = true;
        while (stripped)
        {
            stripped = false;
            foreach (var prefix in WrapperPrefixes)
            {
                if (!key.StartsWith(prefix, StringComparison.Ordinal)) continue;
                key = key[prefix.Length..];
                stripped = true;
            }
        }
        return key;
    }

    /// <summary>Reads latent statistics (stat.pt or safetensors with <c>mean</c> / <c>var</c>), see <see cref="LatentStats"/>.</summary>
    /// <param name="expectedLatentShape">The latent's [C, H, W]; when given, the statistics must have it.</param>
    public static LatentStats LoadLatentStats(string path, long[]? expectedLatentShape = null)
    {
        var entries = LoadStateDict(path, new CheckpointLoadOptions { Entry = CheckpointEntry.Root });
        try
        {
            return LatentStats.FromEntries(entries, path, expectedLatentShape);
        }
        finally
        {
            foreach (var tensor in entries.Values) tensor.Dispose();
        }
    }

    /// <summary>Saves a module's state dict (parameters and persistent buffers, reference key names) as safetensors, atomically.</summary>
    public static void SaveStateDict(string path, nn.Module module)
    {
        var stateDict = module.state_dict();
        SaveStateDict(path, stateDict);
    }

    /// <summary>Saves tensors as safetensors, atomically (temporary file, then rename). Non-contiguous and GPU tensors are copied.</summary>
    public static void SaveStateDict(string path, IEnumerable<KeyValuePair<string, Tensor>> stateDict)
    {
        var entries = stateDict.ToList();
        var duplicate = entries.GroupBy(entry => entry.Key).FirstOrDefault(group => group.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"state dict key '{duplicate.Key}' appears more than once", nameof(stateDict));
        SafeTensors.Save(path, entries, new Dictionary<string, string> { ["format"] = "pt" });
    }

    private static PickleDict SelectStateDict(object? root, CheckpointEntry entry, string path)
    {
        if (root is not PickleDict top)
            throw new CheckpointFormatException(path, $"the checkpoint holds {Unpickler.Describe(root)}, not a dictionary (state dict or training checkpoint)");
        var selected = entry switch
        {
            CheckpointEntry.Root => top,
            CheckpointEntry.Ema => top.TryGetValue("ema", out var ema) ? ema
                : throw new CheckpointFormatException(path, $"the checkpoint has no 'ema' entry (top-level keys: {DescribeKeys(top)})"),
            CheckpointEntry.Model => top.TryGetValue("model", out var model) ? model
                : throw new CheckpointFormatException(path, $"the checkpoint has no 'model' entry (top-level keys: {DescribeKeys(top)})"),
            _ when top.TryGetValue("ema", out var ema) => ema,
            _ when top.ContainsKey("model") => throw new CheckpointFormatException(path,
                "the checkpoint has a 'model' entry but no 'ema' entry; the reference refuses this (NotImplementedError). " +
                "Select CheckpointEntry.Model to load the raw (non-EMA) weights explicitly, or export an EMA/raw state dict."),
            _ => top,
        };
        return selected as PickleDict
            ?? throw new CheckpointFormatException(path, $"the selected checkpoint entry is {Unpickler.Describe(selected)}, not a state dict");
    }

    private static string DescribeKeys(PickleDict dictionary) =>
        string.Join(", ", dictionary.Keys.Take(12).Select(key => Unpickler.Describe(key))) + (dictionary.Count > 12 ? ", …" : "");

    private static Dictionary<string, Tensor> StripWrapperPrefixes(IEnumerable<KeyValuePair<string, Tensor>> tensors, string path)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var originalNames = new Dictionary<string, string>(StringComparer.Ordinal);
        var all = tensors.ToList();
        try
        {
            foreach (var (name, tensor) in all)
            {
                var stripped = StripWrapperPrefixes(name);
                if (originalNames.TryGetValue(stripped, out var earlier))
                    throw new CheckpointFormatException(path, $"keys '{earlier}' and '{name}' both become '{stripped}' once wrapper prefixes are removed");
                originalNames[stripped] = name;
                result[stripped] = tensor;
            }
            return result;
        }
        catch
        {
            foreach (var (_, tensor) in all) tensor.Dispose();
            throw;
        }
    }

    private static bool IsSafeTensors(string path) =>
        path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".safetensor", StringComparison.OrdinalIgnoreCase);
}
