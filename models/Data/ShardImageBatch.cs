using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>
/// Turns a shard's stored images into encoder inputs the way the reference's Stage 2 data does (spec §7.2, §9.1):
/// decode to RGB, ADM center crop to the image size, ToTensor. The flipped copy is the horizontal mirror of the
/// cropped image, which is exactly what <c>RandomHorizontalFlip</c> after the crop produces when it fires.
/// </summary>
public static class ShardImageBatch
{
    /// <summary>Images <c>[n, 3, size, size]</c> in [0, 1] and their labels.</summary>
    public static (Tensor Images, long[] Labels) CenterCropped(IReadOnlyList<ShardImage> images, int imageSize, SafeImageDecoder decoder)
    {
        if (images.Count == 0) throw new ArgumentException("no images to transform", nameof(images));
        using var scope = NewDisposeScope();
        var tensors = new Tensor[images.Count];
        var labels = new long[images.Count];
        for (var index = 0; index < images.Count; index++)
        {
            var result = decoder.Decode(images[index].Encoded);
            if (!result.Succeeded)
                throw new InvalidDataException($"stored image {images[index].Name} no longer decodes: {result.Failure}");
            tensors[index] = ImageTransforms.AdmCenterCrop(result.Image!, imageSize).ToTensor();
            labels[index] = images[index].Label;
        }
        return (stack(tensors).MoveToOuterDisposeScope(), labels);
    }

    /// <summary>The horizontal mirror of a batch <c>[n, C, H, W]</c>.</summary>
    public static Tensor Flipped(Tensor images) => images.flip(-1);
}
