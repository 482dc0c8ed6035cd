using System.Text;
using System.Text.Json;

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
        var lengthBytes = new byte[8];
        await payload.ReadExactlyAsync(lengthBytes, cancellationToken);
        var headerLength = BitConverter.ToUInt64(lengthBytes, 0);
        if (headerLength < 2 || headerLength > (ulong)(payloadLength - 8) || headerLength > MaxHeaderBytes)
            throw new InvalidDataException($"{nameForErrors} is not a safetensors container (header length {headerLength} for {payloadLength} bytes).");
        var headerBytes = new byte[headerLength];
        await payload.ReadExactlyAsync(headerBytes, cancellationToken);
        var dataStart = 8 + (long)headerLength;
        long begin, end;
        try
        {
            using var header = JsonDocument.Parse(headerBytes);
            if (header.RootElement.TryGetProperty("__metadata__", out var metadata) && metadata.TryGetProperty("config", out var config))
                return config.GetString();
            if (!header.RootElement.TryGetProperty(ConfigKey, out var entry)) return null;
            if (entry.GetProperty("dtype").GetString() != "U8")
                throw new InvalidDataException($"{nameForErrors}: '{ConfigKey}' has dtype {entry.GetProperty("dtype").GetString()}, expected U8 (UTF-8 bytes).");
            var offsets = entry.GetProperty("data_offsets");
            begin = offsets[0].GetInt64();
            end = offsets[1].GetInt64();
        }
        catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw new InvalidDataException($"{nameForErrors}: unreadable safetensors header: {error.Message}", error);
        }
        if (begin < 0 || end < begin || end - begin > int.MaxValue || dataStart + end > payloadLength)
            throw new InvalidDataException($"{nameForErrors}: '{ConfigKey}' has data offsets [{begin}, {end}] outside the payload.");
        await SkipAsync(payload, begin, cancellationToken);
        var text = new byte[end - begin];
        await payload.ReadExactlyAsync(text, cancellationToken);
        return Encoding.UTF8.GetString(text);
    }

    private const long MaxHeaderBytes = 100L * 1024 * 1024;

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
