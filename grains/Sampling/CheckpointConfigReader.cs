using System.Text;
using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Grains.Sampling;

/// <summary>
/// Reads the <c>config.yaml</c> entry (UTF-8 bytes as a uint8 tensor, see DiTTrainingState) of a safetensors training
/// checkpoint from its header and raw bytes alone, without materialising any tensor, so a grain turn can afford it.
/// </summary>
public static class CheckpointConfigReader
{
    public const string ConfigKey = "config.yaml";

    /// <summary>The stored configuration, or null when the payload has none; <see cref="InvalidDataException"/> when it is no safetensors container.</summary>
    public static string? ReadConfigYaml(byte[] payload, string nameForErrors)
    {
        ArgumentNullException.ThrowIfNull(payload);
        using var stream = new MemoryStream(payload, writable: false);
        return ReadConfigYamlAsync(stream, payload.Length, nameForErrors).GetAwaiter().GetResult();
    }

    /// <summary>
    /// The stored configuration read from the front of a payload stream of <paramref name="payloadLength"/> bytes: the
    /// header's metadata copy when present (a DiT^DH state of several GB is then not read past its header), else the
    /// <c>config.yaml</c> tensor, reached by reading forward.
    /// </summary>
    public static async Task<string?> ReadConfigYamlAsync(Stream payload, long payloadLength, string nameForErrors, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payload);
        if (payloadLength < 8) throw new InvalidDataException($"{nameForErrors} is {payloadLength} bytes long, too short for a safetensors container.");
        long begin, end;
        try
        {
            var lengthBytes = new byte[8];
            await payload.ReadExactlyAsync(lengthBytes, cancellationToken);
            var headerLength = SafeTensors.HeaderLength(lengthBytes, payloadLength, nameForErrors);
            var headerBytes = new byte[headerLength];
            await payload.ReadExactlyAsync(headerBytes, cancellationToken);
            var header = SafeTensors.ParseHeader(headerBytes, payloadLength - 8 - headerLength, nameForErrors);
            if (header.Metadata.TryGetValue("config", out var config)) return config;
            var entry = header.Entries.FirstOrDefault(e => e.Name == ConfigKey);
            if (entry is null) return null;
            if (entry.Type != ScalarType.Byte)
                throw new InvalidDataException($"{nameForErrors}: '{ConfigKey}' has dtype {entry.Type}, expected U8 (UTF-8 bytes).");
            if (entry.End - entry.Begin > int.MaxValue)
                throw new InvalidDataException($"{nameForErrors}: '{ConfigKey}' holds {entry.End - entry.Begin} bytes, too many for a configuration.");
            (begin, end) = (entry.Begin, entry.End);
        }
        catch (CheckpointFormatException error)
        {
            throw new InvalidDataException($"{nameForErrors} is not a readable safetensors container: {error.Message}", error);
        }
        await SkipAsync(payload, begin, cancellationToken);
        var text = new byte[end - begin];
        await payload.ReadExactlyAsync(text, cancellationToken);
        return Encoding.UTF8.GetString(text);
    }

    private static async Task SkipAsync(Stream stream, long count, CancellationToken cancellationToken)
    {
        if (stream.CanSeek)
        {
            stream.Seek(count, SeekOrigin.Current);
            return;
        }
        var buffer = new byte[Math.Min(count, 1 << 20)];
        while (count > 0)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)), cancellationToken);
            if (read == 0) throw new EndOfStreamException("The payload ended before its config.yaml entry.");
            count -= read;
        }
    }
}
