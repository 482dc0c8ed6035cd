using System.IO.Compression;
using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>
/// Reads .npz archives (numpy.savez and savez_compressed) and plain .npy files: FID reference statistics
/// (<c>mu</c>, <c>sigma</c>, float64) and image arrays (<c>arr_0</c>, uint8 NHWC). Large arrays can be read in batches
/// along the first axis with <see cref="ReadBatches"/>. A .npy file appears as a single array named <c>arr_0</c>.
/// </summary>
public sealed class NpzReader : IDisposable
{
    private const string NpySingleArrayKey = "arr_0";

    private readonly string _path;
    private readonly ZipArchive? _archive;
    private readonly ReaderLimits _limits;
    private readonly Dictionary<string, ZipArchiveEntry> _entries = new(StringComparer.Ordinal);

    private NpzReader(string path, ZipArchive? archive, ReaderLimits limits)
    {
        _path = path;
        _archive = archive;
        _limits = limits;
        if (archive is null) return;
        foreach (var (name, entry) in ZipLimits.IndexEntries(archive, path, new FileInfo(path).Length, limits))
            if (name.EndsWith(".npy", StringComparison.Ordinal)) _entries[name[..^4]] = entry;
    }

    /// <param name="limits">What a file may declare before it is refused; <see cref="ReaderLimits.Default"/> when null.</param>
    public static NpzReader Open(string path, ReaderLimits? limits = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"array file not found: {path}", path);
        limits ??= ReaderLimits.Default;
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return new NpzReader(path, null, limits);
        FileStream? stream = null;
        ZipArchive? archive = null;
        try
        {
            stream = File.OpenRead(path);
            archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false);
            return new NpzReader(path, archive, limits);
        }
        catch (Exception error)
        {
            archive?.Dispose();
            stream?.Dispose();
            if (error is InvalidDataException or EndOfStreamException or NotSupportedException)
                throw new CheckpointFormatException(path, $"not a readable .npz archive (corrupted, truncated or not a zip): {error.Message}", error);
            throw;
        }
    }

    /// <summary>Reads every array of a file into CPU tensors. The caller owns them.</summary>
    public static Dictionary<string, Tensor> LoadAll(string path, ReaderLimits? limits = null)
    {
        using var reader = Open(path, limits);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var key in reader.Keys) result[key] = reader.ReadArray(key);
            return result;
        }
        catch
        {
            foreach (var tensor in result.Values) tensor.Dispose();
            throw;
        }
    }

    public IReadOnlyCollection<string> Keys => _archive is null ? [NpySingleArrayKey] : _entries.Keys;

    public NpyHeader GetHeader(string key)
    {
        using var stream = OpenArray(key, out var header);
        return header;
    }

    /// <summary>Reads a whole array (C or Fortran order) as a contiguous CPU tensor.</summary>
    public Tensor ReadArray(string key)
    {
        using var stream = OpenArray(key, out var header);
        var storedShape = header.FortranOrder ? header.Shape.Reverse().ToArray() : header.Shape;
        using var stored = ReadTensor(stream, header.Dtype, storedShape, key);
        if (!header.FortranOrder) return stored.alias();
        var reversed = Enumerable.Range(0, header.Shape.Length).Reverse().Select(i => (long)i).ToArray();
        using var permuted = stored.permute(reversed);
        return permuted.contiguous();
    }

    /// <summary>Reads a C-order array in batches of at most <paramref name="batchSize"/> rows along the first axis.</summary>
    public IEnumerable<Tensor> ReadBatches(string key, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var stream = OpenArray(key, out var header);
        try
        {
            if (header.FortranOrder || header.Shape.Length == 0)
                throw new CheckpointFormatException(_path, $"array '{key}' is {(header.FortranOrder ? "in Fortran order" : "a scalar")}; batch reading needs a C-order array");
            var rows = header.Shape[0];
            for (long start = 0; start < rows; start += batchSize)
            {
                var count = Math.Min(batchSize, rows - start);
                yield return ReadTensor(stream, header.Dtype, [count, .. header.Shape.Skip(1)], key);
            }
        }
        finally
        {
            stream.Dispose();
        }
    }

    public void Dispose() => _archive?.Dispose();

    private Stream OpenArray(string key, out NpyHeader header)
    {
        Stream? stream = null;
        long available;
        try
        {
            if (_archive is null)
            {
                if (key != NpySingleArrayKey) throw new KeyNotFoundException($"{_path}: a .npy file holds one array, '{NpySingleArrayKey}', not '{key}'");
                stream = File.OpenRead(_path);
                available = stream.Length;
            }
            else
            {
                if (!_entries.TryGetValue(key, out var entry))
                    throw new KeyNotFoundException($"{_path}: no array '{key}' (arrays: {string.Join(", ", _entries.Keys)})");
                stream = entry.Open();
                available = entry.Length;
            }
            header = NpyFormat.ReadHeader(stream, $"{_path} ({key})", available, _limits);
            return stream;
        }
        catch (Exception error)
        {
            stream?.Dispose();
            if (error is InvalidDataException or EndOfStreamException)
                throw new CheckpointFormatException(_path, $"array '{key}' cannot be read (corrupted or truncated): {error.Message}", error);
            throw;
        }
    }

    private Tensor ReadTensor(Stream stream, ScalarType dtype, long[] shape, string key)
    {
        var byteCount = shape.Aggregate(1L, (a, b) => checked(a * b)) * SafeTensors.ElementSize(dtype);
        if (byteCount > int.MaxValue)
            throw new CheckpointFormatException(_path, $"array '{key}' is {byteCount} bytes, too large to read at once; read it in batches");
        var result = empty(shape, dtype);
        try
        {
            var buffer = new byte[byteCount];
            stream.ReadExactly(buffer);
            if (byteCount > 0) result.bytes = buffer;
            return result;
        }
        catch (Exception error)
        {
            result.Dispose();
            if (error is CheckpointFormatException) throw;
            throw new CheckpointFormatException(_path, $"array '{key}' is truncated or corrupted: {error.Message}", error);
        }
    }
}
