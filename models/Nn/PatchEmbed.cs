using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>timm-style patch embedding: Conv2d(kernel = stride = patch) then flatten to tokens [B, N, E]; enforces the input size.</summary>
public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;

    public PatchEmbed(long imageSize, long patchSize, long inChannels, long embedDim) : base(nameof(PatchEmbed))
    {
        if (patchSize <= 0 || imageSize % patchSize != 0)
            throw new ArgumentException($"input size {imageSize} is not divisible by patch size {patchSize}");
        ImageSize = imageSize;
        PatchSize = patchSize;
        InChannels = inChannels;
        proj = nn.Conv2d(inChannels, embedDim, kernel_size: patchSize, stride: patchSize);
        RegisterComponents();
    }

    public long ImageSize { get; }

    public long PatchSize { get; }

    public long InChannels { get; }

    public long GridSide => ImageSize / PatchSize;

    public long NumPatches => GridSide * GridSide;

    public Conv2d Projection => proj;

    public override Tensor forward(Tensor input)
    {
        if (input.dim() != 4 || input.shape[1] != InChannels || input.shape[2] != ImageSize || input.shape[3] != ImageSize)
            throw new ArgumentException(
                $"patch embed expects [B, {InChannels}, {ImageSize}, {ImageSize}], got [{string.Join(", ", input.shape)}]");
        using var scope = NewDisposeScope();
        // Contiguous tokens: the transposed view would carry its [B, E, N] layout through every residual sum of the
        // blocks, and bf16 matmuls on such inputs leave oneDNN for a generic kernel several times slower.
        return proj.forward(input).flatten(2).transpose(1, 2).contiguous().MoveToOuterDisposeScope();
    }
}
