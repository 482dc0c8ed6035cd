namespace RAE.Models.Data;

/// <summary>
/// What <see cref="SafeImageDecoder"/> accepts. The defaults admit ImageNet-scale photographs and refuse anything that
/// could take a silo's memory or time (a 30000x30000 header is refused before a byte of pixels is allocated).
/// </summary>
public sealed record ImageDecodeLimits
{
    /// <summary>Formats torchvision's ImageFolder reads (IMG_EXTENSIONS) that ImageSharp decodes, by ImageSharp's format name.</summary>
    public static readonly IReadOnlySet<string> DefaultFormats =
        new HashSet<string>(["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PBM"], StringComparer.OrdinalIgnoreCase);

    public static ImageDecodeLimits Default { get; } = new();

    public long MaxEncodedBytes { get; init; } = 64L * 1024 * 1024;

    public long MaxPixels { get; init; } = 64L * 1024 * 1024;

    public IReadOnlySet<string> AllowedFormats { get; init; } = DefaultFormats;

    public TimeSpan DecodeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public void Validate()
    {
        if (MaxEncodedBytes <= 0) throw new ArgumentOutOfRangeException(nameof(MaxEncodedBytes), $"must be positive, got {MaxEncodedBytes}");
        if (MaxPixels <= 0) throw new ArgumentOutOfRangeException(nameof(MaxPixels), $"must be positive, got {MaxPixels}");
        if (AllowedFormats.Count == 0) throw new ArgumentException("at least one image format must be allowed", nameof(AllowedFormats));
        if (DecodeTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(DecodeTimeout), $"must be positive, got {DecodeTimeout}");
    }
}
