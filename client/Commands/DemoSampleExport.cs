using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Client.Commands;

/// <summary>The plain files `rae demo` leaves: the PNGs and the FID .npz (null/0 when the sampler kept latents).</summary>
public sealed record DemoSamples(string? NpzPath, string? NpzShape, string? PngFolder, int PngCount);

/// <summary>
/// Copies a finished sampling job's PNGs and `.npz` out of the silo's blob store into ordinary files, because the
/// file-system blob store frames each blob (header, checksum footer): its files are not PNGs or `.npz` archives themselves.
/// </summary>
public static class DemoSampleExport
{
    public const string NpzFile = "samples.npz";
    public const string ImagesFolder = "images";

    public static async Task<DemoSamples> ExportAsync(IBlobStore blobs, SamplingJobStatus status, string folder, CancellationToken cancellationToken)
    {
        string? npz = null;
        string? npzShape = null;
        if (status.OutputLocation is { } output && output.EndsWith(".npz", StringComparison.OrdinalIgnoreCase))
        {
            npz = Path.Combine(folder, NpzFile);
            await CopyAsync(blobs, output, npz, cancellationToken);
            npzShape = DescribeImages(npz);
        }
        string? pngs = null;
        var count = 0;
        if (status.ImagesLocation is { } images)
        {
            pngs = Path.Combine(folder, ImagesFolder);
            await foreach (var blob in blobs.ListAsync(images.TrimEnd('/') + "/", cancellationToken))
            {
                if (!blob.Path.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) continue;
                await CopyAsync(blobs, blob.Path, Path.Combine(pngs, Path.GetFileName(blob.Path)), cancellationToken);
                count++;
            }
        }
        return new DemoSamples(npz, npzShape, pngs, count);
    }

    /// <summary>"uint8 [N, H, W, 3]" from the header of the archive's arr_0.</summary>
    public static string DescribeImages(string npzPath)
    {
        using var reader = NpzReader.Open(npzPath);
        var header = reader.GetHeader(Npz.ImagesKey);
        var dtype = header.Dtype == ScalarType.Byte ? "uint8" : header.Dtype.ToString();
        return $"{dtype} [{string.Join(", ", header.Shape)}]";
    }

    private static async Task CopyAsync(IBlobStore blobs, string blobPath, string filePath, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(filePath)!);
        var temporary = filePath + ".tmp";
        await using (var source = await blobs.OpenReadAsync(blobPath, cancellationToken))
        await using (var target = File.Create(temporary))
            await source.CopyToAsync(target, cancellationToken);
        File.Move(temporary, filePath, overwrite: true);
    }
}
