using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>Reads and writes the safetensors format (8-byte little-endian header length, JSON header, raw data).</summary>
public static class SafeTensors
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    /// <summary>Loads every tensor of the file in header order onto the CPU. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file not found: {path}", path);
        using var stream = File.OpenRead(path);
        return Load(stream, path);
    }

    /// <summary>
    /// Loads the tensors of a safetensors stream (seekable, positioned where the container starts) in header order onto the CPU, or
    /// only those whose name <paramref name="include"/> accepts: the rest are skipped, never read. The caller owns the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> Load(Stream stream, string nameForErrors, Func<string, bool>? include = null)
    {
        var origin = stream.Position;
        var (entries, headerLength) = ReadHeader(stream, nameForErrors);
        if (include is not null) entries = entries.Where(entry => include(entry.Name)).ToList();
        var dataStart = origin + 8 + headerLength;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var entry in entries)
            {
                var byteCount = entry.End - entry.Begin;
                var expected = entry.Shape.Aggregate(1L, (a, b) => a * b) * ElementSize(entry.Type);
                if (byteCount != expected)
                    throw new InvalidDataException($"{nameForErrors}: tensor '{entry.Name}' has {byteCount} bytes, its shape and dtype need {expected}");
                stream.Seek(dataStart + entry.Begin, SeekOrigin.Begin);
                var tensor = empty(entry.Shape, entry.Type);
                result[entry.Name] = tensor;
                if (byteCount > 0) stream.ReadExactly(tensor.bytes); // straight into the tensor's memory
            }
        }
        catch
        {
            foreach (var tensor in result.Values) tensor.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>The tensor names of a safetensors stream in header order; the stream is left where it was.</summary>
    public static IReadOnlyList<string> ReadNames(Stream stream, string nameForErrors)
    {
        var start = stream.Position;
        var (entries, _) = ReadHeader(stream, nameForErrors);
        stream.Position = start;
        return entries.Select(entry => entry.Name).ToList();
    }

    private static (List<(string Name, ScalarType Type, long[] Shape, long Begin, long End)> Entries, long HeaderLength) ReadHeader(Stream stream, string nameForErrors)
    {
        var lengthBytes = new byte[8];
        stream.ReadExactly(lengthBytes);
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes)
            throw new InvalidDataException($"{nameForErrors}: invalid safetensors header length {headerLength}");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        using var header = JsonDocument.Parse(headerBytes);

        var entries = new List<(string Name, ScalarType Type, long[] Shape, long Begin, long End)>();
        foreach (var property in header.RootElement.EnumerateObject())
        {
            if (property.Name == "__metadata__") continue;
            var dtype = ParseDtype(property.Value.GetProperty("dtype").GetString(), nameForErrors, property.Name);
            var shape = property.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var offsets = property.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            entries.Add((property.Name, dtype, shape, offsets[0], offsets[1]));
        }
        return (entries, headerLength);
    }

    /// <summary>Writes the tensors in the given order (CPU copies are made as needed). Atomic: temp file, then rename.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = File.Create(temporary))
            {
                Save(stream, tensors, metadata);
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    /// <summary>
    /// Writes the header, then each tensor's bytes one tensor at a time (a CPU contiguous copy is made per tensor as
    /// needed), so a state of several GB streams to a file or upload without being assembled in memory.
    /// </summary>
    public static void Save(Stream stream, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var entries = tensors.ToList();
        using var headerStream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(headerStream))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in entries)
            {
                var byteCount = tensor.numel() * ElementSize(tensor.dtype);
                writer.WriteStartObject(name);
                writer.WriteString("dtype", DtypeName(tensor.dtype, name));
                writer.WriteStartArray("shape");
                foreach (var dim in tensor.shape) writer.WriteNumberValue(dim);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + byteCount);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += byteCount;
            }
            writer.WriteEndObject();
        }
        var header = headerStream.ToArray().ToList();
        while (header.Count % 8 != 0) header.Add((byte)' ');
        var lengthBytes = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(lengthBytes, header.Count);
        stream.Write(lengthBytes);
        stream.Write(header.ToArray());
        foreach (var (_, tensor) in entries)
        {
            using var cpu = tensor.detach().cpu().contiguous();
            stream.Write(cpu.bytes);
        }
    }

    private static ScalarType ParseDtype(string? name, string file, string tensor) => name switch
    {
        "F32" => ScalarType.Float32,
        "F64" => ScalarType.Float64,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{file}: tensor '{tensor}' has unsupported dtype '{name}'"),
    };

    private static string DtypeName(ScalarType type, string tensor) => type switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"tensor '{tensor}': dtype {type} cannot be stored in safetensors"),
    };

    internal static long ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}
