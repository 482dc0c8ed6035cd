using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace RAE.Grains.Storage;

/// <summary>
/// On-disk layout of one blob, a single file so that one rename commits content and checksum together:
/// "RAEBLOB1" | content | footer JSON (size, sha256, etag, lastModified, metadata) | footer length (int64 LE) | "RAEBEND1".
/// </summary>
internal static class FileSystemBlobFormat
{
    private static readonly byte[] HeadMagic = "RAEBLOB1"u8.ToArray();
    private static readonly byte[] TailMagic = "RAEBEND1"u8.ToArray();
    private const int TailLength = 16;
    private const int MaxFooterLength = 1 << 20;
    private const int CopyBufferSize = 1 << 20;

    public static long ContentOffset => HeadMagic.Length;

    internal sealed record Footer(
        int Version, long Size, string Sha256, string ETag, DateTimeOffset LastModified,
        Dictionary<string, string> Metadata);

    /// <summary>Copies the content into <paramref name="file"/> (positioned at 0) with header and footer, then flushes
    /// it to the disk.</summary>
    public static async Task<Footer> WriteAsync(FileStream file, Stream content, IReadOnlyDictionary<string, string> metadata,
        CancellationToken cancellationToken)
    {
        await file.WriteAsync(HeadMagic, cancellationToken).ConfigureAwait(false);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        long size = 0;
        try
        {
            int read;
            while ((read = await content.ReadAsync(buffer.AsMemory(0, CopyBufferSize), cancellationToken).ConfigureAwait(false)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                size += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var footer = new Footer(1, size, Convert.ToHexStringLower(hash.GetHashAndReset()), Guid.NewGuid().ToString("N"),
            DateTimeOffset.UtcNow, new Dictionary<string, string>(metadata));
        var json = JsonSerializer.SerializeToUtf8Bytes(footer);
        var tail = new byte[TailLength];
        BinaryPrimitives.WriteInt64LittleEndian(tail, json.Length);
        TailMagic.CopyTo(tail, 8);
        await file.WriteAsync(json, cancellationToken).ConfigureAwait(false);
        await file.WriteAsync(tail, cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
        file.Flush(flushToDisk: true);
        return footer;
    }

    /// <summary>Reads and checks the framing; leaves the stream position unspecified.</summary>
    public static Footer ReadFooter(FileStream file, string blobPath, string location)
    {
        BlobCorruptedException Damaged(string what) => new(blobPath, $"blob '{blobPath}' in {location} is damaged: {what}");

        var length = file.Length;
        if (length < HeadMagic.Length + TailLength) throw Damaged($"file is only {length} bytes");
        Span<byte> head = stackalloc byte[8];
        file.Position = 0;
        file.ReadExactly(head);
        if (!head.SequenceEqual(HeadMagic)) throw Damaged("header magic missing (not written by this store)");

        Span<byte> tail = stackalloc byte[TailLength];
        file.Position = length - TailLength;
        file.ReadExactly(tail);
        if (!tail[8..].SequenceEqual(TailMagic)) throw Damaged("trailer magic missing (incomplete write)");
        var footerLength = BinaryPrimitives.ReadInt64LittleEndian(tail);
        if (footerLength is <= 0 or > MaxFooterLength || footerLength > length - HeadMagic.Length - TailLength)
            throw Damaged($"footer length {footerLength} is impossible");

        var json = new byte[footerLength];
        file.Position = length - TailLength - footerLength;
        file.ReadExactly(json);
        Footer? footer;
        try
        {
            footer = JsonSerializer.Deserialize<Footer>(json);
        }
        catch (JsonException ex)
        {
            throw new BlobCorruptedException(blobPath, $"blob '{blobPath}' in {location} is damaged: footer is not valid JSON ({ex.Message})", ex);
        }

        if (footer is null || footer.Version != 1 || footer.Sha256 is not { Length: 64 } || footer.ETag is null || footer.Metadata is null)
            throw Damaged($"footer is incomplete: {Encoding.UTF8.GetString(json)}");
        if (HeadMagic.Length + footer.Size + footerLength + TailLength != length)
            throw Damaged($"recorded size {footer.Size} does not match the file length {length}");
        return footer;
    }
}
