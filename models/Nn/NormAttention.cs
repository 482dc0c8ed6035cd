using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>Multi-head self-attention with a fused qkv projection, optional per-head q/k norm and optional RoPE.</summary>
public sealed class NormAttention : nn.Module
{
    private readonly long _heads;
    private readonly long _headDim;
    private readonly Linear qkv;
    private readonly nn.Module<Tensor, Tensor>? q_norm;
    private readonly nn.Module<Tensor, Tensor>? k_norm;
    private readonly Linear proj;

    public NormAttention(long dim, long numHeads, bool qkvBias = true, bool qkNorm = false, bool useRmsNorm = true)
        : base(nameof(NormAttention))
    {
        if (numHeads <= 0 || dim % numHeads != 0)
            throw new ArgumentException($"attention width {dim} is not divisible by {numHeads} heads");
        _heads = numHeads;
        _headDim = dim / numHeads;
        qkv = nn.Linear(dim, 3 * dim, hasBias: qkvBias);
        if (qkNorm)
        {
            q_norm = Norms.QkNorm(_headDim, useRmsNorm);
            k_norm = Norms.QkNorm(_headDim, useRmsNorm);
        }
        proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public Tensor forward(Tensor input, VisionRotaryEmbeddingFast? rope)
    {
        using var scope = NewDisposeScope();
        var batch = input.shape[0];
        var tokens = input.shape[1];
        var width = input.shape[2];
        // unbind, not split[i]: its backward stacks the three gradients once, where three selects each zero-fill and
        // write a [3, ...] gradient that autograd then sums.
        var split = Autocast.Linear(qkv, input).reshape(batch, tokens, 3, _heads, _headDim).permute(2, 0, 3, 1, 4).unbind(0);
        var q = split[0];
        var k = split[1];
        var v = split[2];
        if (q_norm is not null) q = q_norm.forward(q);
        if (k_norm is not null) k = k_norm.forward(k);
        if (rope is not null)
        {
            q = rope.forward(q);
            k = rope.forward(k);
        }
        q = q.to(v.dtype);
        k = k.to(v.dtype);
        var attended = Autocast.Attention(q, k, v);
        var merged = attended.transpose(1, 2).reshape(batch, tokens, width);
        return Autocast.Linear(proj, merged).MoveToOuterDisposeScope();
    }
}
