using System.IO.Compression;

namespace RAE.Models.IO;

/// <summary>
/// The checks a zip archive (.pt, .npz) passes before any entry is read: how many entries it lists, and that each
/// entry's declared size is possible for the bytes it really occupies. Readers allocate buffers from declared sizes,
/// so a lying header would otherwise cost gigabytes for a file of a few bytes.
/// </summary>
internal static class ZipLimits
{
    /// <summary>The entries by full name, each checked against the file size and the limits.</summary>
    public static Dictionary<string, ZipArchiveEntry> IndexEntries(ZipArchive archive, string path, long fileLength, ReaderLimits limits)
    {
        var entries = archive.Entries;
        if (entries.Count > limits.MaxZipEntries)
            throw CheckpointFormatException.LimitExceeded(path, nameof(ReaderLimits.MaxZipEntries), limits.MaxZipEntries,
                $"the zip archive lists {entries.Count} entries");
        var byName = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            CheckEntry(entry, path, fileLength, limits);
            byName[entry.FullName] = entry;
        }
        return byName;
    }

    private static void CheckEntry(ZipArchiveEntry entry, string path, long fileLength, ReaderLimits limits)
    {
        if (entry.Length < 0 || entry.CompressedLength < 0 || entry.CompressedLength > fileLength)
            throw new CheckpointFormatException(path,
                $"zip entry '{entry.FullName}' declares {entry.CompressedLength} compressed bytes in a file of {fileLength} bytes");
        if (entry.Length > 0 && entry.Length > Math.Max(1, entry.CompressedLength) * limits.MaxZipCompressionRatio)
            throw CheckpointFormatException.LimitExceeded(path, nameof(ReaderLimits.MaxZipCompressionRatio), limits.MaxZipCompressionRatio,
                $"zip entry '{entry.FullName}' declares {entry.Length} bytes from {entry.CompressedLength} compressed bytes");
    }
}
