namespace RAE.Models.Data;

/// <summary>
/// The reference's image transforms on 8-bit RGB images, with PIL's resampling reproduced exactly (<see cref="PilResample"/>).
/// Randomness (crop offsets, flips) comes from the caller's <see cref="DataRandom"/> so that a job seed fixes every choice.
/// </summary>
public static class ImageTransforms
{
    /// <summary>
    /// ADM's <c>center_crop_arr</c> (spec §9.3), used for Stage 2 encoding and evaluation: halve with BOX while the
    /// shorter side is at least 2·size, scale the shorter side to size with BICUBIC (sizes rounded half to even, as
    /// Python's <c>round</c>), then take the centred size×size window.
    /// </summary>
    public static RgbImage AdmCenterCrop(RgbImage image, int size)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), $"crop size must be positive, got {size}");
        while (Math.Min(image.Width, image.Height) >= 2 * size)
            image = PilResample.Resize(image, image.Width / 2, image.Height / 2, PilFilter.Box);
        var scale = (double)size / Math.Min(image.Width, image.Height);
        var width = (int)Math.Round(image.Width * scale, MidpointRounding.ToEven);
        var height = (int)Math.Round(image.Height * scale, MidpointRounding.ToEven);
        image = PilResample.Resize(image, width, height, PilFilter.Bicubic);
        return image.Crop((image.Width - size) / 2, (image.Height - size) / 2, size, size);
    }

    /// <summary>
    /// torchvision's <c>Resize(shorter)</c> on a PIL image: the shorter side becomes <paramref name="shorterSide"/>, the
    /// longer one <c>int(shorter · long / short)</c> (truncated); an image already that size is returned unchanged.
    /// </summary>
    public static RgbImage ResizeShorterSide(RgbImage image, int shorterSide, PilFilter filter)
    {
        if (shorterSide <= 0) throw new ArgumentOutOfRangeException(nameof(shorterSide), $"target size must be positive, got {shorterSide}");
        var widthIsShort = image.Width <= image.Height;
        var shortSide = widthIsShort ? image.Width : image.Height;
        var longSide = widthIsShort ? image.Height : image.Width;
        var newLong = (int)((double)shorterSide * longSide / shortSide);
        var (width, height) = widthIsShort ? (shorterSide, newLong) : (newLong, shorterSide);
        return width == image.Width && height == image.Height ? image : PilResample.Resize(image, width, height, filter);
    }

    /// <summary>The Stage 1 shorter-side length for an image size: 384 for 256, otherwise 1.5·size (spec §4.2).</summary>
    public static int Stage1ResizeTarget(int imageSize) => imageSize == 256 ? 384 : (int)(1.5 * imageSize);

    /// <summary>
    /// Stage 1 training augmentation (spec §4.2): bicubic resize of the shorter side to <see cref="Stage1ResizeTarget"/>,
    /// then a uniformly random size×size crop (torchvision <c>RandomCrop</c>). No flip in the reference.
    /// </summary>
    public static RgbImage Stage1RandomCrop(RgbImage image, int size, DataRandom random)
    {
        var resized = ResizeShorterSide(image, Stage1ResizeTarget(size), PilFilter.Bicubic);
        if (resized.Width < size || resized.Height < size)
            throw new ArgumentException($"a {resized.Width}x{resized.Height} image cannot be cropped to {size}x{size}", nameof(image));
        var top = random.NextInt(resized.Height - size + 1);
        var left = random.NextInt(resized.Width - size + 1);
        return resized.Crop(left, top, size, size);
    }

    /// <summary>torchvision's <c>RandomHorizontalFlip(p)</c>.</summary>
    public static RgbImage RandomHorizontalFlip(RgbImage image, DataRandom random, double probability = 0.5) =>
        random.NextDouble() < probability ? image.FlipHorizontal() : image;
}
