using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// SwiGLU: w12 (in → 2·hidden), SiLU(first half) ⊙ second half, w3 (hidden → in). When hidden is not a multiple of
/// <see cref="HiddenAlignment"/> (the DiT^DH head's 5461), the matmuls run on weights zero-padded to the next multiple:
/// a GEMM whose output rows are not 64-float aligned runs at about two thirds of the speed on CPU (MKL), and the padded
/// columns are exactly zero (SiLU(0)·0), so outputs and gradients are those of the unpadded layer. Parameters keep the
/// reference shapes and names. The activation is <see cref="SiluGate.Composed"/>.
/// </summary>
public sealed class SwiGLUFFN : nn.Module<Tensor, Tensor>
{
    public const long HiddenAlignment = 64;

    private readonly Linear w12;
    private readonly Linear w3;
    private readonly long hiddenFeatures;

    public SwiGLUFFN(long inFeatures, long hiddenFeatures) : base(nameof(SwiGLUFFN))
    {
        this.hiddenFeatures = hiddenFeatures;
        w12 = nn.Linear(inFeatures, 2 * hiddenFeatures);
        w3 = nn.Linear(hiddenFeatures, inFeatures);
        RegisterComponents();
    }

    /// <summary>The blocks' hidden width: int(2/3 · int(dim · mlp_ratio)) (1152 → 3072, 2048 → 5461).</summary>
    public static long BlockHiddenSize(long dim, double mlpRatio) => (long)(2.0 / 3.0 * (long)(dim * mlpRatio));

    /// <summary>The hidden width the matmuls run at: hidden rounded up to a multiple of <see cref="HiddenAlignment"/>.</summary>
    public long ComputeHiddenSize => (hiddenFeatures + HiddenAlignment - 1) / HiddenAlignment * HiddenAlignment;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var padding = ComputeHiddenSize - hiddenFeatures;
        if (padding == 0)
        {
            return Autocast.Linear(w3, SiluGate.Composed(Autocast.Linear(w12, input))).MoveToOuterDisposeScope();
        }
        var inFeatures = w12.weight!.shape[1];
        // [W1; W2] → [W1; 0; W2; 0], so that each half keeps its own zero rows and chunk(2) still splits SiLU input from gate.
        var weight12 = Autocast.Derived(w12.weight, "swiglu-padded",
            w => nn.functional.pad(w.view(2, hiddenFeatures, inFeatures), [0, 0, 0, padding]).view(2 * ComputeHiddenSize, inFeatures));
        var bias12 = w12.bias is null ? null : Autocast.Derived(w12.bias, "swiglu-padded",
            b => nn.functional.pad(b.view(2, hiddenFeatures), [0, padding]).view(2 * ComputeHiddenSize));
        var hidden = SiluGate.Composed(Autocast.Result(nn.functional.linear(Autocast.Operand(input), weight12, bias12)));
        var weight3 = Autocast.Derived(w3.weight!, "swiglu-padded", w => nn.functional.pad(w, [0, padding]));
        var bias3 = w3.bias is null ? null : Autocast.Weight(w3.bias);
        return Autocast.Result(nn.functional.linear(Autocast.Operand(hidden), weight3, bias3)).MoveToOuterDisposeScope();
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
        var hidden = nn.functional.gelu(Autocast.Linear(fc1, input), GELU.Approximate.tanh);
        return Autocast.Linear(fc2, hidden).MoveToOuterDisposeScope();
    }
}
