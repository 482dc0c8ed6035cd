using System.Buffers.Binary;
using System.Text;

namespace RAE.Models.Data;

/// <summary>One image as stored in a shard: its source name, class index and original encoded bytes.</summary>
public sealed record ShardImage(string Name, int Label, byte[] Encoded);

/// <summary>
/// The image shard file: magic <c>RAEIMGS1</c>, int32 count, then per image int32 label, int32 name length, UTF-8 name,
/// int32 byte count, the encoded bytes (all little-endian). Shards are checked by their SHA-256 in the manifest.
/// </summary>
public static class ImageShard
{
    private static readonly byte[] Magic = "RAEIMGS1"u8.ToArray();

    public static byte[] Write(IReadOnlyList<ShardImage> images)
    {
        using var output = new MemoryStream();
        output.Write(Magic);
        WriteInt(output, images.Count);
        foreach (var image in images)
        {
            var name = Encoding.UTF8.GetBytes(image.Name);
            WriteInt(output, image.Label);
            WriteInt(output, name.Length);
            output.Write(name);
            WriteInt(output, image.Encoded.Length);
            output.Write(image.Encoded);
        }
        return output.ToArray();
    }

    public static IReadOnlyList<ShardImage> Read(ReadOnlySpan<byte> shard, string nameForErrors)
    {
        if (shard.Length < Magic.Length + 4 || !shard[..Magic.Length].SequenceEqual(Magic))
            throw new InvalidDataException($"{nameForErrors} is not an image shard (missing the RAEIMGS1 signature)");
        var at = Magic.Length;
        var count = ReadInt(shard, ref at, nameForErrors, "image count");
        var images = new List<ShardImage>(Math.Min(count, 1 << 16));
        for (var index = 0; index < count; index++)
        {
            var label = ReadInt(shard, ref at, nameForErrors, $"label of image {index}");
            var name = Encoding.UTF8.GetString(ReadBytes(shard, ref at, nameForErrors, $"name of image {index}"));
            var encoded = ReadBytes(shard, ref at, nameForErrors, $"bytes of image {index} ({name})").ToArray();
            images.Add(new ShardImage(name, label, encoded));
        }
        if (at != shard.Length)
            throw new InvalidDataException($"{nameForErrors} has {shard.Length - at} unexpected bytes after its {count} images");
        return images;
    }

    private static void WriteInt(Stream output, int value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        output.Write(bytes);
    }

    private static int ReadInt(ReadOnlySpan<byte> shard, ref int at, string nameForErrors, string what)
    {
        if (shard.Length - at < 4) throw new InvalidDataException($"{nameForErrors} is truncated (in the {what})");
        var value = BinaryPrimitives.ReadInt32LittleEndian(shard[at..]);
        at += 4;
        if (value < 0) throw new InvalidDataException($"{nameForErrors} has a negative {what} ({value})");
        return value;
    }

    private static ReadOnlySpan<byte> ReadBytes(ReadOnlySpan<byte> shard, ref int at, string nameForErrors, string what)
    {
        var length = ReadInt(shard, ref at, nameForErrors, $"length of the {what}");
        if (shard.Length - at < length) throw new InvalidDataException($"{nameForErrors} is truncated (in the {what})");
        var bytes = shard.Slice(at, length);
        at += length;
        return bytes;
    }
}
