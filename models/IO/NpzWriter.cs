using System.Buffers.Binary;
using System.Text;
using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>
/// Writes a .npz archive the way <c>numpy.savez</c> does: a zip of stored (uncompressed) <c>{key}.npy</c> entries, each
/// with a ZIP64 local header (numpy passes force_zip64=True), written by Python's zipfile rules (Python ≥ 3.11.4).
/// Arrays can be streamed batch by batch along their first axis (<see cref="BeginArray"/>), so a 50,000-image uint8
/// array never has to be in memory. The file appears at its path only on <see cref="Complete"/> (temporary file, then
/// rename); disposing without completing deletes the partial file.
/// </summary>
public sealed class NpzWriter : IDisposable
{
    internal const uint Zip64Limit = (1u << 31) - 1; // Python's zipfile.ZIP64_LIMIT
    private const ushort Zip64Version = 45;
    private const uint UnixFileMode0600 = 0x180u << 16;

    private readonly string _path;
    private readonly string _temporaryPath;
    private readonly FileStream _stream;
    private readonly List<EntryRecord> _entries = [];
    private readonly (ushort Time, ushort Date) _dosTimestamp;
    private NpyArrayStream? _open;
    private bool _completed;

    private NpzWriter(string path, DateTime? timestamp)
    {
        _path = path;
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
        _temporaryPath = path + ".tmp-" + Guid.NewGuid().ToString("N");
        _stream = new FileStream(_temporaryPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        var now = timestamp ?? DateTime.Now;
        _dosTimestamp = ((ushort)(now.Hour << 11 | now.Minute << 5 | now.Second / 2), (ushort)((now.Year - 1980) << 9 | now.Month << 5 | now.Day));
    }

    /// <param name="timestamp">Modification time written into the zip entries (local time, as numpy does); a fixed value makes
    /// the file's bytes reproducible.</param>
    public static NpzWriter Create(string path, DateTime? timestamp = null) => new(path, timestamp);

    /// <summary>Writes a whole array (copied to the CPU, C order) as <c>{key}.npy</c>.</summary>
    public void WriteArray(string key, Tensor array)
    {
        using var stream = BeginArray(key, array.dtype, array.shape.Skip(1).ToArray(), scalar: array.dim() == 0);
        stream.Append(array.dim() == 0 ? array.unsqueeze(0) : array);
    }

    /// <summary>Starts an array of shape [N, ..trailingShape] whose N grows with every <see cref="NpyArrayStream.Append"/>.</summary>
    public NpyArrayStream BeginArray(string key, ScalarType dtype, long[] trailingShape) => BeginArray(key, dtype, trailingShape, scalar: false);

    private NpyArrayStream BeginArray(string key, ScalarType dtype, long[] trailingShape, bool scalar)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (_open is not null) throw new InvalidOperationException($"array '{_open.Key}' is still being written; dispose its stream first");
        if (string.IsNullOrEmpty(key) || _entries.Any(e => e.Key == key)) throw new ArgumentException($"array key '{key}' is empty or already written", nameof(key));
        NpyFormat.Descr(dtype); // rejects unsupported dtypes before anything is written
        var name = Encoding.UTF8.GetBytes(key + ".npy");
        var headerOffset = _stream.Position;
        WriteLocalHeader(name, crc: 0, size: 0);
        var npyHeader = NpyFormat.BuildHeader(new NpyHeader(dtype, false, scalar ? [] : [0, .. trailingShape]));
        _stream.Write(npyHeader);
        _open = new NpyArrayStream(this, key, dtype, trailingShape, scalar, name, headerOffset, npyHeader.Length);
        return _open;
    }

    /// <summary>Writes the central directory and moves the finished file into place.</summary>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (_open is not null) throw new InvalidOperationException($"array '{_open.Key}' is still being written; dispose its stream first");
        WriteCentralDirectory();
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(_temporaryPath, _path, overwrite: true);
        _completed = true;
    }

    public void Dispose()
    {
        if (_completed) return;
        _completed = true;
        _stream.Dispose();
        if (File.Exists(_temporaryPath)) File.Delete(_temporaryPath);
    }

    internal void WriteData(ReadOnlySpan<byte> data) => _stream.Write(data);

    internal void FinishArray(NpyArrayStream array, NpyHeader finalHeader, uint dataCrc, long dataLength)
    {
        var header = NpyFormat.BuildHeader(finalHeader);
        if (header.Length != array.HeaderLength)
            throw new InvalidOperationException($"array '{array.Key}': the NPY header changed length ({array.HeaderLength} → {header.Length})");
        var end = _stream.Position;
        var crc = Crc32.Combine(Crc32.Compute(header), dataCrc, dataLength);
        var size = header.Length + dataLength;
        _stream.Position = array.HeaderOffset;
        WriteLocalHeader(array.Name, crc, size);
        _stream.Write(header);
        _stream.Position = end;
        _entries.Add(new EntryRecord(array.Key, array.Name, array.HeaderOffset, crc, size));
        _open = null;
    }

    // Local header as Python writes it with force_zip64: sizes 0xFFFFFFFF plus a ZIP64 extra (size, compressed size).
    private void WriteLocalHeader(byte[] name, uint crc, long size)
    {
        Span<byte> header = stackalloc byte[30 + 20];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], Zip64Version);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 0); // flags
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], 0); // stored
        BinaryPrimitives.WriteUInt16LittleEndian(header[10..], _dosTimestamp.Time);
        BinaryPrimitives.WriteUInt16LittleEndian(header[12..], _dosTimestamp.Date);
        BinaryPrimitives.WriteUInt32LittleEndian(header[14..], crc);
        BinaryPrimitives.WriteUInt32LittleEndian(header[18..], 0xFFFFFFFF);
        BinaryPrimitives.WriteUInt32LittleEndian(header[22..], 0xFFFFFFFF);
        BinaryPrimitives.WriteUInt16LittleEndian(header[26..], (ushort)name.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(header[28..], 20);
        BinaryPrimitives.WriteUInt16LittleEndian(header[30..], 1); // ZIP64 extra field
        BinaryPrimitives.WriteUInt16LittleEndian(header[32..], 16);
        BinaryPrimitives.WriteInt64LittleEndian(header[34..], size);
        BinaryPrimitives.WriteInt64LittleEndian(header[42..], size);
        _stream.Write(header[..30]);
        _stream.Write(name);
        _stream.Write(header[30..]);
    }

    private void WriteCentralDirectory()
    {
        var start = _stream.Position;
        foreach (var entry in _entries)
        {
            var zip64Values = new List<long>();
            uint size32 = (uint)entry.Size, offset32 = (uint)entry.HeaderOffset;
            if (entry.Size > Zip64Limit)
            {
                zip64Values.Add(entry.Size);
                zip64Values.Add(entry.Size);
                size32 = 0xFFFFFFFF;
            }
            if (entry.HeaderOffset > Zip64Limit)
            {
                zip64Values.Add(entry.HeaderOffset);
                offset32 = 0xFFFFFFFF;
            }
            var extraLength = zip64Values.Count == 0 ? 0 : 4 + 8 * zip64Values.Count;
            var record = new byte[46 + entry.Name.Length + extraLength];
            var span = record.AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(span, 0x02014b50);
            record[4] = (byte)Zip64Version; // version made by (Python keeps the raised version)
            record[5] = 3; // made on Unix
            BinaryPrimitives.WriteUInt16LittleEndian(span[6..], Zip64Version);
            BinaryPrimitives.WriteUInt16LittleEndian(span[12..], _dosTimestamp.Time);
            BinaryPrimitives.WriteUInt16LittleEndian(span[14..], _dosTimestamp.Date);
            BinaryPrimitives.WriteUInt32LittleEndian(span[16..], entry.Crc);
            BinaryPrimitives.WriteUInt32LittleEndian(span[20..], size32);
            BinaryPrimitives.WriteUInt32LittleEndian(span[24..], size32);
            BinaryPrimitives.WriteUInt16LittleEndian(span[28..], (ushort)entry.Name.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(span[30..], (ushort)extraLength);
            BinaryPrimitives.WriteUInt32LittleEndian(span[38..], UnixFileMode0600);
            BinaryPrimitives.WriteUInt32LittleEndian(span[42..], offset32);
            entry.Name.CopyTo(span[46..]);
            if (extraLength > 0)
            {
                var extra = span[(46 + entry.Name.Length)..];
                BinaryPrimitives.WriteUInt16LittleEndian(extra, 1);
                BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)(8 * zip64Values.Count));
                for (var i = 0; i < zip64Values.Count; i++) BinaryPrimitives.WriteInt64LittleEndian(extra[(4 + 8 * i)..], zip64Values[i]);
            }
            _stream.Write(record);
        }

        var end = _stream.Position;
        long count = _entries.Count, directorySize = end - start, directoryOffset = start;
        if (count > 0xFFFF || directoryOffset > Zip64Limit || directorySize > Zip64Limit)
        {
            var zip64End = new byte[56 + 20];
            var span = zip64End.AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(span, 0x06064b50);
            BinaryPrimitives.WriteInt64LittleEndian(span[4..], 44);
            BinaryPrimitives.WriteUInt16LittleEndian(span[12..], Zip64Version);
            BinaryPrimitives.WriteUInt16LittleEndian(span[14..], Zip64Version);
            BinaryPrimitives.WriteInt64LittleEndian(span[24..], count);
            BinaryPrimitives.WriteInt64LittleEndian(span[32..], count);
            BinaryPrimitives.WriteInt64LittleEndian(span[40..], directorySize);
            BinaryPrimitives.WriteInt64LittleEndian(span[48..], directoryOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(span[56..], 0x07064b50);
            BinaryPrimitives.WriteInt64LittleEndian(span[64..], end);
            BinaryPrimitives.WriteUInt32LittleEndian(span[72..], 1);
            _stream.Write(zip64End);
            count = Math.Min(count, 0xFFFF);
            directorySize = Math.Min(directorySize, 0xFFFFFFFF);
            directoryOffset = Math.Min(directoryOffset, 0xFFFFFFFF);
        }
        var endRecord = new byte[22];
        BinaryPrimitives.WriteUInt32LittleEndian(endRecord, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(endRecord.AsSpan(8), (ushort)count);
        BinaryPrimitives.WriteUInt16LittleEndian(endRecord.AsSpan(10), (ushort)count);
        BinaryPrimitives.WriteUInt32LittleEndian(endRecord.AsSpan(12), (uint)directorySize);
        BinaryPrimitives.WriteUInt32LittleEndian(endRecord.AsSpan(16), (uint)directoryOffset);
        _stream.Write(endRecord);
    }

    private sealed record EntryRecord(string Key, byte[] Name, long HeaderOffset, uint Crc, long Size);
}

/// <summary>One array of an <see cref="NpzWriter"/> being written batch by batch along its first axis.</summary>
public sealed class NpyArrayStream : IDisposable
{
    private readonly NpzWriter _writer;
    private readonly bool _scalar;
    private uint _crc;
    private long _dataLength;
    private bool _finished;

    internal NpyArrayStream(NpzWriter writer, string key, ScalarType dtype, long[] trailingShape, bool scalar, byte[] name, long headerOffset, int headerLength)
    {
        _writer = writer;
        Key = key;
        Dtype = dtype;
        TrailingShape = trailingShape;
        _scalar = scalar;
        Name = name;
        HeaderOffset = headerOffset;
        HeaderLength = headerLength;
    }

    public string Key { get; }

    public ScalarType Dtype { get; }

    public long[] TrailingShape { get; }

    /// <summary>Rows (first-axis entries) written so far.</summary>
    public long Count { get; private set; }

    internal byte[] Name { get; }

    internal long HeaderOffset { get; }

    internal int HeaderLength { get; }

    /// <summary>Appends a batch [n, ..TrailingShape] of the array's dtype (any device; copied to the CPU in C order).</summary>
    public void Append(Tensor batch)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        if (batch.dtype != Dtype) throw new ArgumentException($"array '{Key}' holds {Dtype}, the batch is {batch.dtype}", nameof(batch));
        if (batch.dim() != TrailingShape.Length + 1 || !batch.shape.Skip(1).SequenceEqual(TrailingShape))
            throw new ArgumentException($"array '{Key}' takes batches [n, {string.Join(", ", TrailingShape)}], got [{string.Join(", ", batch.shape)}]", nameof(batch));
        if (_scalar && Count + batch.shape[0] > 1) throw new InvalidOperationException($"array '{Key}' is a scalar");
        using var cpu = batch.detach().cpu().contiguous();
        var bytes = cpu.bytes;
        _writer.WriteData(bytes);
        _crc = Crc32.Append(_crc, bytes);
        _dataLength += bytes.Length;
        Count += batch.shape[0];
    }

    /// <summary>Finishes the array: its header gets the final first-axis length.</summary>
    public void Dispose()
    {
        if (_finished) return;
        _finished = true;
        _writer.FinishArray(this, new NpyHeader(Dtype, false, _scalar ? [] : [Count, .. TrailingShape]), _crc, _dataLength);
    }
}
