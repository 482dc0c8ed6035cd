using RAE.Models.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage2;

/// <summary>
/// The transformer block shared by DiT^DH and LightningDiT: norm1/norm2, NormAttention, SwiGLU (or Mlp) and an adaLN
/// modulation SiLU → Linear(D → 6D). Chunks in order shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
/// With wo_shift the Linear gives 4D and the chunks are scale_msa, gate_msa, scale_mlp, gate_mlp (no shifts; the
/// reference crashes there, this is the LightningDiT-original layout). Conditioning may be [B, D] or per token [B, L, D].
/// </summary>
public sealed class LightningDDTBlock : nn.Module
{
    private readonly bool _withoutShift;
    private readonly nn.Module<Tensor, Tensor> norm1;
    private readonly NormAttention attn;
    private readonly nn.Module<Tensor, Tensor> norm2;
    private readonly nn.Module<Tensor, Tensor> mlp;
    private readonly Sequential adaLN_modulation;

    public LightningDDTBlock(long hiddenSize, long numHeads, double mlpRatio, bool useQkNorm, bool useSwiGlu, bool useRmsNorm, bool withoutShift)
        : base(nameof(LightningDDTBlock))
    {
        _withoutShift = withoutShift;
        norm1 = Norms.BlockNorm(hiddenSize, useRmsNorm);
        attn = new NormAttention(hiddenSize, numHeads, qkvBias: true, qkNorm: useQkNorm, useRmsNorm: useRmsNorm);
        norm2 = Norms.BlockNorm(hiddenSize, useRmsNorm);
        mlp = useSwiGlu
            ? new SwiGLUFFN(hiddenSize, SwiGLUFFN.BlockHiddenSize(hiddenSize, mlpRatio))
            : new Mlp(hiddenSize, (long)(hiddenSize * mlpRatio));
        adaLN_modulation = nn.Sequential(("0", nn.SiLU()), ("1", nn.Linear(hiddenSize, (withoutShift ? 4 : 6) * hiddenSize)));
        RegisterComponents();
    }

    public Linear ModulationLinear => (Linear)adaLN_modulation[1];

    public Tensor forward(Tensor x, Tensor condition, VisionRotaryEmbeddingFast? rope)
    {
        using var scope = NewDisposeScope();
        if (condition.dim() < x.dim()) condition = condition.unsqueeze(1);
        var chunks = Autocast.Linear(ModulationLinear, nn.functional.silu(condition)).chunk(_withoutShift ? 4 : 6, -1);
        Tensor? shiftMsa = null, shiftMlp = null;
        Tensor scaleMsa, gateMsa, scaleMlp, gateMlp;
        if (_withoutShift)
        {
            (scaleMsa, gateMsa, scaleMlp, gateMlp) = (chunks[0], chunks[1], chunks[2], chunks[3]);
        }
        else
        {
            (shiftMsa, scaleMsa, gateMsa) = (chunks[0], chunks[1], chunks[2]);
            (shiftMlp, scaleMlp, gateMlp) = (chunks[3], chunks[4], chunks[5]);
        }
        var attended = attn.forward(Nn.Modulation.Modulate(norm1.forward(x), shiftMsa, scaleMsa), rope);
        x = x + Nn.Modulation.Gate(attended, gateMsa);
        var fed = mlp.forward(Nn.Modulation.Modulate(norm2.forward(x), shiftMlp, scaleMlp));
        x = x + Nn.Modulation.Gate(fed, gateMlp);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Final layer: norm_final, adaLN (SiLU → Linear D → 2D: shift, scale) and linear D → patch²·out_channels.</summary>
public sealed class FinalLayer : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> norm_final;
    private readonly Linear linear;
    private readonly Sequential adaLN_modulation;

    public FinalLayer(long hiddenSize, long patchSize, long outChannels, bool useRmsNorm) : base(nameof(FinalLayer))
    {
        norm_final = Norms.BlockNorm(hiddenSize, useRmsNorm);
        linear = nn.Linear(hiddenSize, patchSize * patchSize * outChannels);
        adaLN_modulation = nn.Sequential(("0", nn.SiLU()), ("1", nn.Linear(hiddenSize, 2 * hiddenSize)));
        RegisterComponents();
    }

    public Linear Output => linear;

    public Linear ModulationLinear => (Linear)adaLN_modulation[1];

    public Tensor forward(Tensor x, Tensor condition)
    {
        using var scope = NewDisposeScope();
        if (condition.dim() < x.dim()) condition = condition.unsqueeze(1);
        var chunks = Autocast.Linear(ModulationLinear, nn.functional.silu(condition)).chunk(2, -1);
        // The prediction leaves in the residual stream's dtype (fp32 under bf16 autocast), so losses and samplers stay fp32.
        return Autocast.Linear(linear, Nn.Modulation.Modulate(norm_final.forward(x), chunks[0], chunks[1])).to(x.dtype).MoveToOuterDisposeScope();
    }
}
