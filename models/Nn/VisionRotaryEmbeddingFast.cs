using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// 2-D interleaved RoPE (EVA "Fast" variant). <c>dim</c> is half the head dimension; the angle vector of token (i, j) is
/// concat(F2[i], F2[j]) (row first, then column), each frequency duplicated for an adjacent pair. The tables are
/// persistent buffers <c>freqs_cos</c>, <c>freqs_sin</c> of shape [G·G, 2·dim].
/// </summary>
public sealed class VisionRotaryEmbeddingFast : nn.Module<Tensor, Tensor>
{
    public VisionRotaryEmbeddingFast(long dim, long gridSide, double theta = 10000, Device? device = null)
        : base(nameof(VisionRotaryEmbeddingFast))
    {
        if (dim <= 0 || dim % 2 != 0) throw new ArgumentException($"RoPE dim must be a positive even number, got {dim}", nameof(dim));
        if (gridSide <= 0) throw new ArgumentException($"RoPE grid side must be positive, got {gridSide}", nameof(gridSide));
        Dim = dim;
        GridSide = gridSide;
        using (var scope = NewDisposeScope())
        {
            // Same float32 operation order as the reference: 1 / theta^(arange(0, dim, 2) / dim), positions arange(G)/G·G.
            var exponents = arange(0, dim, 2, dtype: float32).slice(0, 0, dim / 2, 1) / dim;
            var frequencies = pow(tensor((float)theta), exponents).reciprocal();
            var positions = arange(gridSide, dtype: float32) / gridSide * gridSide;
            var angles = positions.unsqueeze(1) * frequencies.unsqueeze(0);                  // [G, dim/2]
            var paired = angles.unsqueeze(-1).expand(gridSide, dim / 2, 2).reshape(gridSide, dim); // [G, dim]
            var rows = paired.unsqueeze(1).expand(gridSide, gridSide, dim);
            var columns = paired.unsqueeze(0).expand(gridSide, gridSide, dim);
            var table = cat([rows, columns], -1).reshape(gridSide * gridSide, 2 * dim);
            var cosTable = table.cos().contiguous();
            var sinTable = table.sin().contiguous();
            if (device is not null)
            {
                cosTable = cosTable.to(device);
                sinTable = sinTable.to(device);
            }
            register_buffer("freqs_cos", cosTable.MoveToOuterDisposeScope(), persistent: true);
            register_buffer("freqs_sin", sinTable.MoveToOuterDisposeScope(), persistent: true);
        }
    }

    public long Dim { get; }

    public long GridSide { get; }

    public Tensor FreqsCos => get_buffer("freqs_cos")!;

    public Tensor FreqsSin => get_buffer("freqs_sin")!;

    /// <summary>Rotates t [B, heads, L, 2·dim]; when L is a multiple k of the table length each row is repeated k times.</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var cosTable = FreqsCos;
        var sinTable = FreqsSin;
        var length = input.shape[^2];
        var tableLength = cosTable.shape[0];
        if (length != tableLength)
        {
            if (length % tableLength != 0)
                throw new ArgumentException($"RoPE: token count {length} is not a multiple of the table length {tableLength}");
            cosTable = cosTable.repeat_interleave(length / tableLength, dim: 0);
            sinTable = sinTable.repeat_interleave(length / tableLength, dim: 0);
        }
        // x·cos + rotate_half(x)·sin as x·cos + swap_pairs(x)·(±sin): one flip instead of neg, two selects and a stack,
        // whose backward allocated a zero-filled full-size gradient per select.
        var signedSin = (sinTable.view(length, Dim, 2) * PairSigns(sinTable)).view(sinTable.shape);
        return addcmul(input * cosTable, SwapPairs(input), signedSin, 1).MoveToOuterDisposeScope();
    }

    /// <summary>(x₂ₘ, x₂ₘ₊₁) → (x₂ₘ₊₁, x₂ₘ): <see cref="RotateHalf"/> without the sign.</summary>
    public static Tensor SwapPairs(Tensor input)
    {
        var shape = input.shape;
        return input.reshape([.. shape[..^1], shape[^1] / 2, 2]).flip(-1).reshape(shape);
    }

    /// <summary>[−1, +1]: the signs rotate_half gives the swapped pair.</summary>
    private static Tensor PairSigns(Tensor like) => tensor(new float[] { -1, 1 }, dtype: like.dtype, device: like.device);

    /// <summary>Adjacent pairs (x₂ₘ, x₂ₘ₊₁) → (−x₂ₘ₊₁, x₂ₘ) (interleaved, GPT-J style).</summary>
    public static Tensor RotateHalf(Tensor input)
    {
        using var scope = NewDisposeScope();
        var shape = input.shape;
        var pairs = input.reshape([.. shape[..^1], shape[^1] / 2, 2]);
        var even = pairs.select(-1, 0);
        var odd = pairs.select(-1, 1);
        return stack([odd.neg(), even], -1).reshape(shape).MoveToOuterDisposeScope();
    }
}
