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
        if (payload.Length < 8) throw new InvalidDataException($"{nameForErrors} is {payload.Length} bytes long, too short for a safetensors container.");
        var headerLength = BitConverter.ToUInt64(payload, 0);
        if (headerLength < 2 || headerLength > (ulong)(payload.Length - 8))
            throw new InvalidDataException($"{nameForErrors} is not a safetensors container (header length {headerLength} for {payload.Length} bytes).");
        var dataStart = 8 + (long)headerLength;
        try
        {
            using var header = JsonDocument.Parse(payload.AsMemory(8, (int)headerLength));
            if (header.RootElement.TryGetProperty(ConfigKey, out var entry))
            {
                if (entry.GetProperty("dtype").GetString() != "U8")
                    throw new InvalidDataException($"{nameForErrors}: '{ConfigKey}' has dtype {entry.GetProperty("dtype").GetString()}, expected U8 (UTF-8 bytes).");
                var offsets = entry.GetProperty("data_offsets");
                var begin = offsets[0].GetInt64();
                var end = offsets[1].GetInt64();
                if (begin < 0 || end < begin || dataStart + end > payload.Length)
                    throw new InvalidDataException($"{nameForErrors}: '{ConfigKey}' has data offsets [{begin}, {end}] outside the payload.");
                return Encoding.UTF8.GetString(payload, (int)(dataStart + begin), (int)(end - begin));
            }
            return header.RootElement.TryGetProperty("__metadata__", out var metadata) && metadata.TryGetProperty("config", out var config)
                ? config.GetString() : null;
        }
        catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw new InvalidDataException($"{nameForErrors}: unreadable safetensors header: {error.Message}", error);
        }
    }
}
