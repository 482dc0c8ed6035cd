namespace RAE.Models.IO;

/// <summary>
/// Picks one part of a training-state payload whose tensors are named <c>model.*</c>, <c>ema.*</c>, <c>optimizer.*</c>,
/// ...: the key prefix of the wanted part, or "" for a payload of bare weights (no model./ema. parts) when no part was
/// asked for explicitly.
/// </summary>
public static class CheckpointParts
{
    /// <summary>The prefix to load; <see cref="MissingCheckpointPartException"/> naming the part when the payload has none of it.</summary>
    public static string SelectPrefix(IReadOnlyCollection<string> names, string part, bool partExplicit, string nameForErrors)
    {
        var prefix = part + ".";
        if (names.Any(name => name.StartsWith(prefix, StringComparison.Ordinal))) return prefix;
        var hasParts = names.Any(name => name.StartsWith("ema.", StringComparison.Ordinal) || name.StartsWith("model.", StringComparison.Ordinal));
        if (partExplicit || hasParts)
            throw new MissingCheckpointPartException($"{nameForErrors} holds no '{prefix}*' tensors (it has: {string.Join(", ", names.Take(5))}...).");
        return "";
    }

    /// <summary>The tensors of the selected part with their prefix kept (a seekable safetensors stream at its start); the caller owns them.</summary>
    public static (string Prefix, Dictionary<string, TorchSharp.torch.Tensor> Tensors) Load(Stream payload, string part, bool partExplicit, string nameForErrors)
    {
        var prefix = SelectPrefix(SafeTensors.ReadNames(payload, nameForErrors), part, partExplicit, nameForErrors);
        return (prefix, SafeTensors.Load(payload, nameForErrors, name => name.StartsWith(prefix, StringComparison.Ordinal)));
    }
}

/// <summary>A readable payload without the part that was asked for (as opposed to one that is no safetensors container).</summary>
public sealed class MissingCheckpointPartException(string message) : Exception(message);
