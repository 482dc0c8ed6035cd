using RAE.Models.Nn;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1;

/// <summary>Eager multi-head attention on already projected Q, K, V ([B,N,D] each): softmax(QKᵀ/√d)V.</summary>
internal static class MultiHeadAttention
{
    public static Tensor Compute(Tensor query, Tensor key, Tensor value, int heads)
    {
        using var scope = NewDisposeScope();
        var batch = query.shape[0];
        var tokens = query.shape[1];
        var width = query.shape[2];
        var headDim = width / heads;
        Tensor Split(Tensor t) => t.view(batch, t.shape[1], heads, headDim).transpose(1, 2);
        var attended = Autocast.Attention(Split(query), Split(key), Split(value));
        return attended.transpose(1, 2).reshape(batch, tokens, width).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers <c>ViTSelfAttention</c> (also used by ViT-MAE and DINOv2): query, key, value. Inside a bf16
/// <see cref="Autocast"/> scope (the Stage 1 decoder's training forward) the projections and the attention run in bf16.
/// </summary>
public sealed class HfSelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly int _heads;

    public HfSelfAttention(int width, int heads, bool qkvBias) : base(nameof(HfSelfAttention))
    {
        if (width % heads != 0) throw new ArgumentException($"attention width {width} is not divisible by {heads} heads");
        query = nn.Linear(width, width, qkvBias);
        key = nn.Linear(width, width, qkvBias);
        value = nn.Linear(width, width, qkvBias);
        _heads = heads;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var q = Autocast.Linear(query, hidden);
        using var k = Autocast.Linear(key, hidden);
        using var v = Autocast.Linear(value, hidden);
        return MultiHeadAttention.Compute(q, k, v, _heads);
    }
}

/// <summary>A module holding one Linear called <c>dense</c> (transformers ViTSelfOutput / ViTOutput / ViTIntermediate).</summary>
public sealed class HfDense : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;

    public HfDense(int inputs, int outputs) : base(nameof(HfDense))
    {
        dense = nn.Linear(inputs, outputs);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => Autocast.Linear(dense, input);
}

/// <summary>transformers <c>ViTAttention</c>: <c>attention</c> (Q/K/V) followed by <c>output.dense</c>.</summary>
public sealed class HfAttention : nn.Module<Tensor, Tensor>
{
    private readonly HfSelfAttention attention;
    private readonly HfDense output;

    public HfAttention(int width, int heads, bool qkvBias) : base(nameof(HfAttention))
    {
        attention = new HfSelfAttention(width, heads, qkvBias);
        output = new HfDense(width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var attended = attention.forward(hidden);
        return output.forward(attended);
    }
}

/// <summary>
/// transformers <c>ViTMAELayer</c> (pre-norm): h += O(Attn(LN_before(h))); h += W2(act(W1(LN_after(h)))).
/// Keys: attention.attention.{query,key,value}, attention.output.dense, intermediate.dense, output.dense,
/// layernorm_before, layernorm_after.
/// </summary>
public sealed class ViTMaeLayer : nn.Module<Tensor, Tensor>
{
    private readonly HfAttention attention;
    private readonly HfDense intermediate;
    private readonly HfDense output;
    private readonly LayerNorm layernorm_before;
    private readonly LayerNorm layernorm_after;
    private readonly Func<Tensor, Tensor> _activation;

    public ViTMaeLayer(int width, int heads, int intermediateSize, double layerNormEps, bool qkvBias, Func<Tensor, Tensor> activation)
        : base(nameof(ViTMaeLayer))
    {
        attention = new HfAttention(width, heads, qkvBias);
        intermediate = new HfDense(width, intermediateSize);
        output = new HfDense(intermediateSize, width);
        layernorm_before = nn.LayerNorm(width, layerNormEps);
        layernorm_after = nn.LayerNorm(width, layerNormEps);
        _activation = activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var afterAttention = hidden + attention.forward(layernorm_before.forward(hidden));
        var mlp = output.forward(_activation(intermediate.forward(layernorm_after.forward(afterAttention))));
        return (afterAttention + mlp).MoveToOuterDisposeScope();
    }
}

/// <summary>PyTorch-default initialisation drawn from an explicit generator (reproducible training from scratch).</summary>
public static class DefaultInitialisation
{
    /// <summary>
    /// Linear/Conv2d: weight and bias ~ U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a=√5 reduces to this);
    /// LayerNorm: weight 1, bias 0. Other parameters are left to the caller.
    /// </summary>
    public static void Apply(nn.Module module, Generator generator)
    {
        using var noGrad = no_grad();
        foreach (var (_, child) in module.named_modules())
        {
            switch (child)
            {
                case Linear linear:
                    Uniform(linear.weight!, linear.bias, linear.weight!.shape[1], generator);
                    break;
                case Conv2d conv:
                    Uniform(conv.weight!, conv.bias, conv.weight!.shape[1] * conv.weight.shape[2] * conv.weight.shape[3], generator);
                    break;
                case LayerNorm norm:
                    if (norm.weight is not null) nn.init.ones_(norm.weight);
                    if (norm.bias is not null) nn.init.zeros_(norm.bias);
                    break;
            }
        }
    }

    private static void Uniform(Tensor weight, Tensor? bias, long fanIn, Generator generator)
    {
        // Tensor.uniform_ honours the generator; nn.init.uniform_ in TorchSharp 0.107 ignores it.
        var bound = 1.0 / Math.Sqrt(fanIn);
        weight.uniform_(-bound, bound, generator);
        bias?.uniform_(-bound, bound, generator);
    }
}
