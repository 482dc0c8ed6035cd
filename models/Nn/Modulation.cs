using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>adaLN helpers. Conditioning is [B, L, D] (per token) or [B, 1, D] (broadcast over tokens).</summary>
public static class Modulation
{
    /// <summary>x·(1 + scale) + shift (shift optional: wo_shift). A conditioning with k times fewer tokens is repeated consecutively.</summary>
    public static Tensor Modulate(Tensor x, Tensor? shift, Tensor scale)
    {
        using var scope = NewDisposeScope();
        var result = x * (1 + MatchTokens(scale, x));
        if (shift is not null) result = result + MatchTokens(shift, x);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>x · gate, with the same token matching as <see cref="Modulate"/>.</summary>
    public static Tensor Gate(Tensor x, Tensor gate)
    {
        using var scope = NewDisposeScope();
        return (x * MatchTokens(gate, x)).MoveToOuterDisposeScope();
    }

    private static Tensor MatchTokens(Tensor condition, Tensor x)
    {
        var conditionTokens = condition.shape[1];
        var tokens = x.shape[1];
        if (conditionTokens == tokens || conditionTokens == 1) return condition.alias();
        if (tokens % conditionTokens != 0)
            throw new ArgumentException($"adaLN: {tokens} tokens cannot be conditioned by {conditionTokens} condition rows");
        return condition.repeat_interleave(tokens / conditionTokens, dim: 1);
    }
}
