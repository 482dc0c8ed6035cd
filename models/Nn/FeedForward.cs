using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>SwiGLU: w12 (in → 2·hidden), SiLU(first half) ⊙ second half, w3 (hidden → in).</summary>
public sealed class SwiGLUFFN : nn.Module<Tensor, Tensor>
{
    private readonly Linear w12;
    private readonly Linear w3;

    public SwiGLUFFN(long inFeatures, long hiddenFeatures) : base(nameof(SwiGLUFFN))
    {
        w12 = nn.Linear(inFeatures, 2 * hiddenFeatures);
        w3 = nn.Linear(hiddenFeatures, inFeatures);
        RegisterComponents();
    }

    /// <summary>The blocks' hidden width: int(2/3 · int(dim · mlp_ratio)) (1152 → 3072, 2048 → 5461).</summary>
    public static long BlockHiddenSize(long dim, double mlpRatio) => (long)(2.0 / 3.0 * (long)(dim * mlpRatio));

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var halves = w12.forward(input).chunk(2, -1);
        return w3.forward(nn.functional.silu(halves[0]) * halves[1]).MoveToOuterDisposeScope();
    }
}

/// <summary>timm's Mlp as the blocks use it with use_swiglu=false: fc1, tanh-approximated GELU, fc2.</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public Mlp(long inFeatures, long hiddenFeatures) : base(nameof(Mlp))
    {
        fc1 = nn.Linear(inFeatures, hiddenFeatures);
        fc2 = nn.Linear(hiddenFeatures, inFeatures);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = nn.functional.gelu(fc1.forward(input), GELU.Approximate.tanh);
        return fc2.forward(hidden).MoveToOuterDisposeScope();
    }
}
