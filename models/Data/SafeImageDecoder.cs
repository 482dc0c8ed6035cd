using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;
using ImageSharpConfiguration = SixLabors.ImageSharp.Configuration;

namespace RAE.Models.Data;

/// <summary>The outcome of decoding one file: an RGB image, or the reason it was refused.</summary>
public sealed record DecodeResult(RgbImage? Image, string? Format, string? Failure)
{
    public bool Succeeded => Image is not null;

    public static DecodeResult Refused(string reason, string? format = null) => new(null, format, reason);
}

/// <summary>
/// Decodes untrusted image bytes with ImageSharp under <see cref="ImageDecodeLimits"/>: the format is detected from the
/// content (not the file name) and must be allowed, the header's dimensions are checked before any pixels are
/// allocated, and decoding runs under a timeout. Every image comes out as 8-bit RGB (grayscale replicated, palette
/// expanded, alpha dropped, as PIL's <c>convert("RGB")</c>); multi-frame GIF/TIFF files give their first frame.
/// Never throws for bad content: the reason is returned.
/// </summary>
public sealed class SafeImageDecoder
{
    private readonly ImageDecodeLimits _limits;
    private readonly ImageSharpConfiguration _configuration;

    public SafeImageDecoder(ImageDecodeLimits? limits = null)
    {
        _limits = limits ?? ImageDecodeLimits.Default;
        _limits.Validate();
        _configuration = ImageSharpConfiguration.Default.Clone();
        _configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        _configuration.ImageFormatsManager.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First });
    }

    public ImageDecodeLimits Limits => _limits;

    public DecodeResult Decode(ReadOnlyMemory<byte> encoded)
    {
        if (encoded.Length == 0) return DecodeResult.Refused("empty file (0 bytes)");
        if (encoded.Length > _limits.MaxEncodedBytes)
            return DecodeResult.Refused($"{encoded.Length} bytes exceeds the limit of {_limits.MaxEncodedBytes} encoded bytes");

        var format = Image.DetectFormat(_configuration, encoded.Span);
        if (format is null) return DecodeResult.Refused("not a recognised image format (unknown file signature)");
        if (!_limits.AllowedFormats.Contains(format.Name))
            return DecodeResult.Refused($"format {format.Name} is not allowed (allowed: {string.Join(", ", _limits.AllowedFormats.Order())})", format.Name);
        var decoder = _configuration.ImageFormatsManager.FindDecoder(format);
        if (decoder is null) return DecodeResult.Refused($"no decoder for format {format.Name}", format.Name);

        using var cancellation = new CancellationTokenSource(_limits.DecodeTimeout);
        var work = Task.Run(() => DecodeChecked(encoded, format, decoder, cancellation.Token));
        try
        {
            if (!work.Wait(_limits.DecodeTimeout))
            {
                cancellation.Cancel();
                // The abandoned decode is bounded by the pixel limit checked before it started; observe its fault.
                work.ContinueWith(static task => _ = task.Exception, TaskScheduler.Default);
                return DecodeResult.Refused($"decoding took longer than the {_limits.DecodeTimeout.TotalSeconds:0.###} s limit", format.Name);
            }
            return work.Result;
        }
        catch (AggregateException error) when (error.InnerException is not null)
        {
            return DecodeResult.Refused(Describe(error.InnerException), format.Name);
        }
    }

    private DecodeResult DecodeChecked(ReadOnlyMemory<byte> encoded, IImageFormat format, IImageDecoder decoder, CancellationToken token)
    {
        IImageInfo? info;
        using (var headerStream = new MemoryStream(encoded.ToArray(), writable: false))
            info = decoder is IImageInfoDetector detector ? detector.Identify(_configuration, headerStream, token) : null;
        if (info is null) return DecodeResult.Refused($"unreadable {format.Name} header", format.Name);
        if (info.Width <= 0 || info.Height <= 0)
            return DecodeResult.Refused($"invalid dimensions {info.Width}x{info.Height} in the {format.Name} header", format.Name);
        var pixels = (long)info.Width * info.Height;
        if (pixels > _limits.MaxPixels)
            return DecodeResult.Refused($"{info.Width}x{info.Height} = {pixels} pixels exceeds the limit of {_limits.MaxPixels}", format.Name);

        using var stream = new MemoryStream(encoded.ToArray(), writable: false);
        using var image = decoder.Decode<Rgb24>(_configuration, stream, token);
        var bytes = new byte[image.Width * image.Height * 3];
        image.CopyPixelDataTo(bytes);
        return new DecodeResult(new RgbImage(image.Width, image.Height, bytes), format.Name, null);
    }

    private static string Describe(Exception error) => error switch
    {
        OperationCanceledException => "decoding was cancelled after the time limit",
        InvalidImageContentException => $"corrupt or truncated image data: {error.Message}",
        ImageFormatException => $"invalid image: {error.Message}",
        EndOfStreamException => "truncated image data (unexpected end of file)",
        OutOfMemoryException => "the image needs more memory than is available",
        _ => $"{error.GetType().Name}: {error.Message}",
    };
}
