using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>The normalisation layers the Stage-2 blocks choose between.</summary>
public static class Norms
{
    /// <summary>Block / final-layer norm: RMSNorm(dim) with a learned weight, or LayerNorm without affine (eps 1e-6).</summary>
    public static nn.Module<Tensor, Tensor> BlockNorm(long dim, bool useRmsNorm) =>
        useRmsNorm ? new RMSNorm(dim) : nn.LayerNorm(dim, eps: 1e-6, elementwise_affine: false);

    /// <summary>Per-head q/k norm: RMSNorm(head_dim) when use_rmsnorm, else an affine LayerNorm with PyTorch's default eps.</summary>
    public static nn.Module<Tensor, Tensor> QkNorm(long headDim, bool useRmsNorm) =>
        useRmsNorm ? new RMSNorm(headDim) : nn.LayerNorm(headDim);
}
