using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>
/// Reads files written by <c>torch.save</c> (the zip format of PyTorch ≥ 1.6) without Python: <c>*/data.pkl</c> is
/// unpickled by a data-only reader and tensor storages come from <c>*/data/{key}</c>. Tensors always load onto the CPU.
/// <see cref="Root"/> holds <see cref="TensorReference"/> leaves; read them with <see cref="ReadTensor"/> or
/// <see cref="Materialize"/>, or use <see cref="Load"/> to get the whole tree with tensors.
/// </summary>
public sealed class PyTorchCheckpoint : IDisposable
{
    private const int ReadChunkBytes = 64 * 1024 * 1024;
    private static readonly byte[] ZipMagic = "PK\u0003\u0004"u8.ToArray();

    private readonly ZipArchive _archive;
    private readonly Dictionary<string, ZipArchiveEntry> _entries;
    private readonly string _recordPrefix;

    private PyTorchCheckpoint(string path, ZipArchive archive, bool allowUnknownGlobals, ReaderLimits limits)
    {
        FilePath = path;
        _archive = archive;
        _entries = ZipLimits.IndexEntries(archive, path, new FileInfo(path).Length, limits);
        _recordPrefix = FindRecordPrefix();
        CheckByteOrder();
        var resolver = new TorchPickleGlobals(path, allowUnknownGlobals, DescribeStorage, limits);
        var pickleName = _recordPrefix + "data.pkl";
        if (_entries.TryGetValue(pickleName, out var pickle) && pickle.Length > limits.MaxPickleBytes)
            throw CheckpointFormatException.LimitExceeded(path, nameof(ReaderLimits.MaxPickleBytes), limits.MaxPickleBytes,
                $"'{pickleName}' declares {pickle.Length} bytes");
        Root = new Unpickler(ReadEntry(pickleName), $"{path} (data.pkl)", resolver, limits).Load();
    }

    public string FilePath { get; }

    /// <summary>The unpickled object: <see cref="PickleDict"/>, lists, <see cref="PickleTuple"/>, scalars and <see cref="TensorReference"/>s.</summary>
    public object? Root { get; }

    /// <summary>Opens a checkpoint and unpickles its structure; tensor data is read on demand.</summary>
    /// <param name="allowUnknownGlobals">Keep references to unknown Python globals as inert <see cref="PickleObject"/>s instead of failing.</param>
    /// <param name="limits">What a file may declare before it is refused; <see cref="ReaderLimits.Default"/> when null.</param>
    public static PyTorchCheckpoint Open(string path, bool allowUnknownGlobals = false, ReaderLimits? limits = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"PyTorch checkpoint not found: {path}", path);
        CheckLooksLikeZip(path);
        FileStream? stream = null;
        ZipArchive? archive = null;
        try
        {
            stream = File.OpenRead(path);
            archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false);
            return new PyTorchCheckpoint(path, archive, allowUnknownGlobals, limits ?? ReaderLimits.Default);
        }
        catch (Exception error) when (error is not CheckpointFormatException)
        {
            archive?.Dispose();
            stream?.Dispose();
            if (error is InvalidDataException or EndOfStreamException or IOException or NotSupportedException)
                throw new CheckpointFormatException(path, $"not a readable torch.save zip archive (corrupted or truncated): {error.Message}", error);
            throw;
        }
        catch
        {
            archive?.Dispose();
            stream?.Dispose();
            throw;
        }
    }

    /// <summary>Reads the whole checkpoint into a tree of .NET objects with CPU tensors. The caller owns the tensors.</summary>
    public static object? Load(string path, bool allowUnknownGlobals = false, ReaderLimits? limits = null)
    {
        using var checkpoint = Open(path, allowUnknownGlobals, limits);
        return checkpoint.Materialize(checkpoint.Root);
    }

    /// <summary>Copies a tree, replacing every <see cref="TensorReference"/> by a tensor read from the file.</summary>
    public object? Materialize(object? node)
    {
        var created = new List<Tensor>();
        try
        {
            return MaterializeInto(node, created);
        }
        catch
        {
            foreach (var tensor in created) tensor.Dispose();
            throw;
        }
    }

    /// <summary>Reads one tensor: a contiguous CPU tensor that owns its memory, honouring the stored offset and strides.</summary>
    public Tensor ReadTensor(TensorReference reference)
    {
        var storage = reference.Storage;
        using var scope = NewDisposeScope();
        var data = ReadStorage(storage);
        var view = data.as_strided(reference.Shape, reference.Stride, reference.StorageOffset);
        var result = !view.is_contiguous() ? view.contiguous()
            : reference.ElementCount == storage.Numel ? view
            : view.clone(); // a part of a larger storage: copy so the tensor does not keep the whole storage alive
        return result.MoveToOuterDisposeScope();
    }

    public void Dispose() => _archive.Dispose();

    private object? MaterializeInto(object? node, List<Tensor> created)
    {
        switch (node)
        {
            case TensorReference reference:
                var tensor = ReadTensor(reference);
                created.Add(tensor);
                return tensor;
            case PickleDict dictionary:
                var copy = new PickleDict(dictionary.PythonType);
                foreach (var (key, value) in dictionary) copy[key] = MaterializeInto(value, created);
                foreach (var (name, value) in dictionary.Attributes) copy.Attributes[name] = MaterializeInto(value, created);
                return copy;
            case List<object?> list:
                return list.Select(item => MaterializeInto(item, created)).ToList();
            case PickleTuple tuple:
                return new PickleTuple(tuple.Select(item => MaterializeInto(item, created)).ToArray());
            default:
                return node;
        }
    }

    private Tensor ReadStorage(StorageReference storage)
    {
        var entryName = $"{_recordPrefix}data/{storage.Key}";
        if (!_entries.TryGetValue(entryName, out var entry))
            throw new CheckpointFormatException(FilePath, $"storage '{storage.Key}' is referenced by the pickle but the archive has no entry '{entryName}'");
        var elementSize = SafeTensors.ElementSize(storage.Dtype);
        if (storage.Numel > long.MaxValue / elementSize)
            throw new CheckpointFormatException(FilePath, $"storage '{storage.Key}' declares {storage.Numel} elements, which overflows 64-bit sizes");
        var byteCount = storage.Numel * elementSize;
        if (entry.Length < byteCount)
            throw new CheckpointFormatException(FilePath, $"storage '{storage.Key}' should hold {storage.Numel} {storage.Dtype} elements ({byteCount} bytes) but its entry has {entry.Length} bytes");
        var result = empty(storage.Numel, storage.Dtype);
        try
        {
            using var stream = entry.Open();
            var chunkElements = Math.Max(1, ReadChunkBytes / elementSize);
            var buffer = new byte[Math.Min(byteCount, chunkElements * elementSize)];
            for (long start = 0; start < storage.Numel; start += chunkElements)
            {
                var count = Math.Min(chunkElements, storage.Numel - start);
                var span = buffer.AsSpan(0, (int)(count * elementSize));
                stream.ReadExactly(span);
                if (count == storage.Numel)
                {
                    result.bytes = span;
                    break;
                }
                using var part = empty(count, storage.Dtype);
                part.bytes = span;
                using var slice = result.narrow(0, start, count);
                slice.copy_(part);
            }
            return result;
        }
        catch (Exception error)
        {
            result.Dispose();
            if (error is CheckpointFormatException) throw;
            throw new CheckpointFormatException(FilePath, $"cannot read storage '{storage.Key}' ({entryName}): {error.Message}", error);
        }
    }

    private StorageReference DescribeStorage(PickleTuple id)
    {
        // ('storage', storage_type, key, location, numel)
        if (!TorchPickleGlobals.TryGetStorageDtype(id[1], out var dtype))
            throw new CheckpointFormatException(FilePath, $"unsupported storage type {Unpickler.Describe(id[1])}");
        if (id[2] is not string key || id[4] is not long numel || numel < 0)
            throw new CheckpointFormatException(FilePath, $"malformed storage id {id}");
        return new StorageReference(key, dtype, numel, id[3] as string ?? "cpu");
    }

    private string FindRecordPrefix()
    {
        var candidates = _entries.Keys.Where(name => name.EndsWith("data.pkl", StringComparison.Ordinal)
            && (name == "data.pkl" || name.EndsWith("/data.pkl", StringComparison.Ordinal))).OrderBy(name => name.Count(c => c == '/')).ToList();
        if (candidates.Count == 0)
        {
            var torchScript = _entries.Keys.Any(name => name.EndsWith("constants.pkl", StringComparison.Ordinal) || name.Contains("/code/", StringComparison.Ordinal));
            throw new CheckpointFormatException(FilePath, torchScript
                ? "this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint"
                : "the zip archive has no data.pkl, so it is not a torch.save checkpoint");
        }
        return candidates[0][..^"data.pkl".Length];
    }

    private void CheckByteOrder()
    {
        if (!_entries.ContainsKey(_recordPrefix + "byteorder")) return;
        var order = Encoding.ASCII.GetString(ReadEntry(_recordPrefix + "byteorder")).Trim();
        if (order != "little")
            throw new CheckpointFormatException(FilePath, $"tensor data is stored in '{order}' byte order; only little-endian checkpoints are supported");
    }

    private byte[] ReadEntry(string name)
    {
        if (!_entries.TryGetValue(name, out var entry)) throw new CheckpointFormatException(FilePath, $"the archive has no entry '{name}'");
        if (entry.Length > int.MaxValue) throw new CheckpointFormatException(FilePath, $"entry '{name}' is too large ({entry.Length} bytes)");
        var bytes = new byte[entry.Length];
        using var stream = entry.Open();
        stream.ReadExactly(bytes);
        return bytes;
    }

    private static void CheckLooksLikeZip(string path)
    {
        var head = new byte[4];
        int read;
        using (var stream = File.OpenRead(path)) read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (read == head.Length && head.AsSpan().SequenceEqual(ZipMagic)) return;
        if (read > 0 && head[0] == 0x80)
            throw new CheckpointFormatException(path, "this is a legacy (pre-1.6, non-zip) torch.save file; re-save it with a current PyTorch or convert it to safetensors");
        throw new CheckpointFormatException(path, read == 0 ? "the file is empty, not a torch.save checkpoint" : "not a torch.save checkpoint (no zip signature at the start of the file)");
    }
}
