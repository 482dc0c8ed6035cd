using TorchSharp;

namespace RAE.Models.Stage1;

/// <summary>
/// A frozen representation encoder used by the RAE wrapper (DINOv2, SigLIP2, MAE, ResNet18, ...).
/// The RAE normalises images with <see cref="ImageMean"/>/<see cref="ImageStd"/> and resizes them to the
/// encoder's input size before calling <see cref="Encode"/>.
/// </summary>
public interface IRepresentationEncoder
{
    /// <summary>Patch size of the encoder in pixels (the token grid is input_size / PatchSize per side).</summary>
    int PatchSize { get; }

    /// <summary>Channel width C of the returned tokens.</summary>
    int HiddenSize { get; }

    /// <summary>Per-channel RGB mean used to normalise images in [0,1] before encoding (3 values).</summary>
    IReadOnlyList<float> ImageMean { get; }

    /// <summary>Per-channel RGB std used to normalise images in [0,1] before encoding (3 values).</summary>
    IReadOnlyList<float> ImageStd { get; }

    /// <summary>
    /// Encodes already normalised images [B,3,H,W] into patch tokens [B,N,C] (N = (H/PatchSize)·(W/PatchSize),
    /// row-major over the grid, no CLS or register tokens). Called without gradient tracking.
    /// </summary>
    torch.Tensor Encode(torch.Tensor images);
}
