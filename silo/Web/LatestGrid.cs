using System.Globalization;
using RAE.Grains.Storage;
using RAE.Models.Data;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Silo.Web;

/// <summary>
/// Where a job's latest image grid comes from: one stored grid blob (<see cref="Composed"/> false) or the first images of
/// a sampling job, tiled by <see cref="LatestGrid.RenderPngAsync"/>.
/// </summary>
public sealed record GridSource(string Kind, long? Step, IReadOnlyList<string> Blobs, bool Composed);

/// <summary>
/// Finds and renders the latest sample or reconstruction grid of a job. Jobs that write grids put them at
/// <c>jobs/JOB/FOLDER/step-NNNNNNN.png</c> (<see cref="StepGridFolders"/>: Stage 1 reconstructions in "recon", online
/// samples in "samples"); the newest step wins. A sampling job writes one PNG per sample instead, so its grid is the
/// first <see cref="MaxComposedImages"/> of them tiled. Add a folder to <see cref="StepGridFolders"/> for a new kind.
/// </summary>
public static class LatestGrid
{
    public const int MaxComposedImages = 64;
    /// <summary>Small samples (8x8, 32x32) are enlarged by whole factors up to at least this many pixels per side.</summary>
    public const int MinimumTilePixels = 64;
    private const int Gap = 2;

    public static IReadOnlyList<(string Folder, string Kind)> StepGridFolders { get; } = [("recon", "reconstruction"), ("samples", "samples")];

    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static readonly SafeImageDecoder Decoder = new(new ImageDecodeLimits
    {
        AllowedFormats = new HashSet<string>(["PNG"], StringComparer.OrdinalIgnoreCase),
        MaxEncodedBytes = 16L * 1024 * 1024,
        MaxPixels = 1024L * 1024,
    });

    /// <summary>The newest grid of the job, or null when it has none (yet).</summary>
    public static async Task<GridSource?> FindAsync(IBlobStore blobs, JobView job, CancellationToken cancellationToken = default)
    {
        GridSource? newest = null;
        foreach (var (folder, kind) in StepGridFolders)
        {
            await foreach (var blob in blobs.ListAsync($"jobs/{job.JobId}/{folder}/", cancellationToken))
            {
                if (StepOf(blob.Path) is { } step && (newest is null || step > newest.Step))
                    newest = new GridSource(kind, step, [blob.Path], Composed: false);
            }
        }
        if (newest is not null || job.Sampling?.ImagesLocation is not { } images) return newest;

        var pngs = new List<string>();
        await foreach (var blob in blobs.ListAsync(images + "/", cancellationToken))
        {
            if (!blob.Path.EndsWith(".png", StringComparison.Ordinal)) continue;
            pngs.Add(blob.Path);
            if (pngs.Count == MaxComposedImages) break;
        }
        return pngs.Count == 0 ? null : new GridSource("samples", null, pngs, Composed: true);
    }

    /// <summary>The step of a <c>step-NNNNNNN.png</c> blob name; null for any other name.</summary>
    public static long? StepOf(string path)
    {
        var name = path[(path.LastIndexOf('/') + 1)..];
        if (!name.StartsWith("step-", StringComparison.Ordinal) || !name.EndsWith(".png", StringComparison.Ordinal)) return null;
        var digits = name["step-".Length..^".png".Length];
        return digits.Length > 0 && digits.All(char.IsAsciiDigit)
            && long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var step) ? step : null;
    }

    /// <summary>The grid as PNG bytes; <see cref="InvalidDataException"/> when a stored grid is not a PNG.</summary>
    public static async Task<byte[]> RenderPngAsync(IBlobStore blobs, GridSource source, CancellationToken cancellationToken = default)
    {
        if (!source.Composed)
        {
            var stored = (await blobs.GetAsync(source.Blobs[0], cancellationToken)).Data;
            return stored.AsSpan().StartsWith(PngSignature) ? stored
                : throw new InvalidDataException($"The grid blob '{source.Blobs[0]}' is not a PNG.");
        }

        var images = new List<RgbImage>();
        foreach (var path in source.Blobs)
        {
            var decoded = Decoder.Decode((await blobs.GetAsync(path, cancellationToken)).Data);
            if (decoded.Image is { } image) images.Add(image);
        }
        if (images.Count == 0) throw new InvalidDataException($"None of the {source.Blobs.Count} sample images could be decoded as PNG.");
        return Tile(images);
    }

    /// <summary>Tiles the images row by row in a near-square grid, each enlarged by the same whole factor (nearest neighbour).</summary>
    public static byte[] Tile(IReadOnlyList<RgbImage> images)
    {
        var cellWidth = images.Max(i => i.Width);
        var cellHeight = images.Max(i => i.Height);
        var scale = Math.Max(1, (MinimumTilePixels + Math.Max(cellWidth, cellHeight) - 1) / Math.Max(cellWidth, cellHeight));
        var columns = (int)Math.Ceiling(Math.Sqrt(images.Count));
        var rows = (images.Count + columns - 1) / columns;
        var (tileWidth, tileHeight) = (cellWidth * scale, cellHeight * scale);
        var width = columns * tileWidth + (columns + 1) * Gap;
        var height = rows * tileHeight + (rows + 1) * Gap;
        var pixels = new byte[width * height * 3];
        Array.Fill(pixels, (byte)255);
        for (var index = 0; index < images.Count; index++)
        {
            var image = images[index];
            var left = Gap + index % columns * (tileWidth + Gap);
            var top = Gap + index / columns * (tileHeight + Gap);
            for (var y = 0; y < image.Height * scale; y++)
            {
                for (var x = 0; x < image.Width * scale; x++)
                {
                    var from = ((y / scale) * image.Width + x / scale) * 3;
                    var to = ((top + y) * width + left + x) * 3;
                    pixels[to] = image.Pixels[from];
                    pixels[to + 1] = image.Pixels[from + 1];
                    pixels[to + 2] = image.Pixels[from + 2];
                }
            }
        }
        using var grid = Image.LoadPixelData<Rgb24>(pixels, width, height);
        using var output = new MemoryStream();
        grid.SaveAsPng(output);
        return output.ToArray();
    }
}
