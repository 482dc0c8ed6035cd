using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>Reads and writes the safetensors format (8-byte little-endian header length, JSON header, raw data).</summary>
public static class SafeTensors
{
    /// <summary>Loads every tensor of the file in header order onto the CPU. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Load(string path, ReaderLimits? limits = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file not found: {path}", path);
        using var stream = File.OpenRead(path);
        return Load(stream, path, limits: limits);
    }

    /// <summary>
    /// Loads the tensors of a safetensors stream (seekable, positioned where the container starts) in header order onto the CPU, or
    /// only those whose name <paramref name="include"/> accepts: the rest are skipped, never read. The caller owns the tensors.
    /// Every entry's <c>data_offsets</c> must lie within the stream and overlap no other entry's.
    /// </summary>
    public static Dictionary<string, Tensor> Load(Stream stream, string nameForErrors, Func<string, bool>? include = null, ReaderLimits? limits = null)
    {
        var origin = stream.Position;
        var (entries, headerLength) = ReadHeader(stream, nameForErrors, limits ?? ReaderLimits.Default);
        if (include is not null) entries = entries.Where(entry => include(entry.Name)).ToList();
        var dataStart = origin + 8 + headerLength;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var entry in entries)
            {
                stream.Seek(dataStart + entry.Begin, SeekOrigin.Begin);
                var tensor = empty(entry.Shape, entry.Type);
                result[entry.Name] = tensor;
                if (entry.End > entry.Begin) stream.ReadExactly(tensor.bytes); // straight into the tensor's memory
            }
        }
        catch (Exception error)
        {
            foreach (var tensor in result.Values) tensor.Dispose();
            if (error is EndOfStreamException) throw new CheckpointFormatException(nameForErrors, "the tensor data is truncated", error);
            throw;
        }
        return result;
    }

    /// <summary>The tensor names of a safetensors stream in header order; the stream is left where it was.</summary>
    public static IReadOnlyList<string> ReadNames(Stream stream, string nameForErrors)
    {
        var start = stream.Position;
        var (entries, _) = ReadHeader(stream, nameForErrors, ReaderLimits.Default);
        stream.Position = start;
        return entries.Select(entry => entry.Name).ToList();
    }

    /// <summary>One tensor of a safetensors header: its data lies at [Begin, End) of the data section.</summary>
    public sealed record Entry(string Name, ScalarType Type, long[] Shape, long Begin, long End);

    /// <summary>A parsed and checked safetensors header: its tensors in header order and its <c>__metadata__</c> strings.</summary>
    public sealed record Header(IReadOnlyList<Entry> Entries, IReadOnlyDictionary<string, string> Metadata);

    private static (List<Entry> Entries, long HeaderLength) ReadHeader(Stream stream, string nameForErrors, ReaderLimits limits)
    {
        var available = stream.Length - stream.Position;
        var lengthBytes = new byte[8];
        if (stream.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8)
            throw new CheckpointFormatException(nameForErrors, $"a safetensors file needs at least 8 bytes, this one has {available}");
        var headerLength = HeaderLength(lengthBytes, available, nameForErrors, limits);
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        var header = ParseHeader(headerBytes, available - 8 - headerLength, nameForErrors, limits);
        return ([.. header.Entries], headerLength);
    }

    /// <summary>The header length from a container's first 8 bytes, checked against the limit and the <paramref name="available"/> bytes.</summary>
    public static long HeaderLength(ReadOnlySpan<byte> firstEightBytes, long available, string nameForErrors, ReaderLimits? limits = null)
    {
        limits ??= ReaderLimits.Default;
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(firstEightBytes);
        if (headerLength > limits.MaxSafeTensorsHeaderBytes)
            throw CheckpointFormatException.LimitExceeded(nameForErrors, nameof(ReaderLimits.MaxSafeTensorsHeaderBytes), limits.MaxSafeTensorsHeaderBytes,
                $"the safetensors header length is {headerLength}");
        if (headerLength <= 0 || headerLength > available - 8)
            throw new CheckpointFormatException(nameForErrors, $"invalid safetensors header length {headerLength} for a stream of {available} bytes (truncated or not safetensors)");
        return headerLength;
    }

    /// <summary>
    /// Parses the JSON header of a container whose data section holds <paramref name="dataLength"/> bytes; every entry's
    /// dtype, shape and <c>data_offsets</c> are checked (within the data, no overlap). <see cref="CheckpointFormatException"/> otherwise.
    /// </summary>
    public static Header ParseHeader(byte[] headerBytes, long dataLength, string nameForErrors, ReaderLimits? limits = null)
    {
        limits ??= ReaderLimits.Default;
        try
        {
            using var header = JsonDocument.Parse(headerBytes);
            if (header.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(nameForErrors, "the safetensors header is not a JSON object");
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in header.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    foreach (var item in property.Value.EnumerateObject()) metadata[item.Name] = item.Value.GetString() ?? "";
                    continue;
                }
                entries.Add(ReadEntry(property, nameForErrors, dataLength, limits));
            }
            CheckNoOverlap(entries, nameForErrors);
            return new Header(entries, metadata);
        }
        catch (Exception error) when (error is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new CheckpointFormatException(nameForErrors, $"malformed safetensors header: {error.Message}", error);
        }
    }

    private static Entry ReadEntry(JsonProperty property, string file, long dataLength, ReaderLimits limits)
    {
        var name = property.Name;
        var dtype = ParseDtype(property.Value.GetProperty("dtype").GetString(), file, name);
        var shape = property.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        var offsets = property.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        if (shape.Length > limits.MaxDimensions)
            throw CheckpointFormatException.LimitExceeded(file, nameof(ReaderLimits.MaxDimensions), limits.MaxDimensions, $"tensor '{name}' has {shape.Length} dimensions");
        if (offsets.Length != 2)
            throw new CheckpointFormatException(file, $"tensor '{name}' has {offsets.Length} data_offsets, expected [begin, end]");
        var (begin, end) = (offsets[0], offsets[1]);
        if (begin < 0 || end < begin || end > dataLength)
            throw new CheckpointFormatException(file, $"tensor '{name}' has data_offsets [{begin}, {end}] outside the {dataLength} data bytes of the file");
        if (shape.Any(d => d < 0)) throw new CheckpointFormatException(file, $"tensor '{name}' has a negative dimension in [{string.Join(", ", shape)}]");
        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException(file, $"tensor '{name}' has shape [{string.Join(", ", shape)}], whose size overflows 64 bits");
        }
        if (end - begin != expected)
            throw new CheckpointFormatException(file, $"tensor '{name}' has {end - begin} bytes, its shape and dtype need {expected}");
        return new Entry(name, dtype, shape, begin, end);
    }

    private static void CheckNoOverlap(List<Entry> entries, string file)
    {
        Entry? previous = null;
        foreach (var entry in entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin))
        {
            if (previous is not null && entry.Begin < previous.End)
                throw new CheckpointFormatException(file,
                    $"tensors '{previous.Name}' [{previous.Begin}, {previous.End}) and '{entry.Name}' [{entry.Begin}, {entry.End}) overlap in the data section");
            previous = entry;
        }
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
        _ => throw new CheckpointFormatException(file, $"tensor '{tensor}' has unsupported dtype '{name}'"),
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
