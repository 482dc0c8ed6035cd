using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>
/// Random access to the rows of a verified local latent shard (<see cref="LatentShard"/> layout): the safetensors header
/// is parsed once (with the reader limits), the labels are read whole, and each latent is read on demand at its offset,
/// so a batch touching many shards reads only its own rows. bfloat16 rows become float32 (exactly: bf16 is the upper
/// half of an fp32). Reads are positional, so several threads may read one file.
/// </summary>
public sealed class LatentShardFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly long _latentsOffset;
    private readonly long? _flippedOffset;
    private readonly bool _bfloat16;

    private LatentShardFile(SafeFileHandle handle, long latentsOffset, long? flippedOffset, bool bfloat16, long rowElements, long[] labels, string name)
    {
        _handle = handle;
        _latentsOffset = latentsOffset;
        _flippedOffset = flippedOffset;
        _bfloat16 = bfloat16;
        RowElements = rowElements;
        Labels = labels;
        Name = name;
    }

    public string Name { get; }

    public long Count => Labels.Count;

    /// <summary>C·H·W: floats per latent.</summary>
    public long RowElements { get; }

    public IReadOnlyList<long> Labels { get; }

    public bool HasFlips => _flippedOffset is not null;

    /// <summary>Opens <paramref name="path"/> and checks that it holds <paramref name="expectedCount"/> latents of <paramref name="latentShape"/>.</summary>
    public static LatentShardFile Open(string path, string nameForErrors, IReadOnlyList<long> latentShape, long expectedCount)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            var length = RandomAccess.GetLength(handle);
            Span<byte> prefix = stackalloc byte[8];
            if (RandomAccess.Read(handle, prefix, 0) < 8) throw new InvalidDataException($"{nameForErrors} is truncated ({length} bytes)");
            var headerLength = SafeTensors.HeaderLength(prefix, length, nameForErrors);
            var headerBytes = new byte[headerLength];
            RandomAccess.Read(handle, headerBytes, 8);
            var dataStart = 8 + headerLength;
            var header = SafeTensors.ParseHeader(headerBytes, length - dataStart, nameForErrors);
            var entries = header.Entries.ToDictionary(entry => entry.Name, StringComparer.Ordinal);
            if (!entries.TryGetValue(LatentShard.LatentsKey, out var latents) || !entries.TryGetValue(LatentShard.LabelsKey, out var labelsEntry))
                throw new InvalidDataException($"{nameForErrors} is not a latent shard (it needs '{LatentShard.LatentsKey}' and '{LatentShard.LabelsKey}')");
            if (latents.Type is not (ScalarType.Float32 or ScalarType.BFloat16))
                throw new InvalidDataException($"{nameForErrors}: latents must be float32 or bfloat16, got {latents.Type}");
            if (latents.Shape.Length != 4 || !latents.Shape.Skip(1).SequenceEqual(latentShape))
                throw new InvalidDataException(
                    $"{nameForErrors}: latents are [{string.Join(", ", latents.Shape.Skip(1))}] but the config expects [{string.Join(", ", latentShape)}] (misc.latent_size)");
            if (latents.Shape[0] != expectedCount)
                throw new InvalidDataException($"{nameForErrors} holds {latents.Shape[0]} latents, the manifest says {expectedCount}");
            if (labelsEntry.Type != ScalarType.Int64 || labelsEntry.Shape.Length != 1 || labelsEntry.Shape[0] != expectedCount)
                throw new InvalidDataException($"{nameForErrors}: '{LatentShard.LabelsKey}' must be int64 [{expectedCount}], got {labelsEntry.Type} [{string.Join(", ", labelsEntry.Shape)}]");
            long? flippedOffset = null;
            if (entries.TryGetValue(LatentShard.FlippedKey, out var flipped))
            {
                if (flipped.Type != latents.Type || !flipped.Shape.SequenceEqual(latents.Shape))
                    throw new InvalidDataException($"{nameForErrors}: flipped latents {flipped.Type} [{string.Join(", ", flipped.Shape)}] differ from latents {latents.Type} [{string.Join(", ", latents.Shape)}]");
                flippedOffset = dataStart + flipped.Begin;
            }
            var labelBytes = new byte[labelsEntry.End - labelsEntry.Begin];
            RandomAccess.Read(handle, labelBytes, dataStart + labelsEntry.Begin);
            var labels = new long[expectedCount];
            for (var i = 0; i < labels.Length; i++) labels[i] = BinaryPrimitives.ReadInt64LittleEndian(labelBytes.AsSpan(i * 8, 8));
            var rowElements = latentShape.Aggregate(1L, (a, b) => a * b);
            return new LatentShardFile(handle, dataStart + latents.Begin, flippedOffset, latents.Type == ScalarType.BFloat16, rowElements, labels, nameForErrors);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Latent <paramref name="row"/> (or its mirrored image's) as float32 into <paramref name="destination"/> (C·H·W floats).</summary>
    public void ReadLatent(long row, bool flipped, Span<float> destination)
    {
        if (row < 0 || row >= Count) throw new ArgumentOutOfRangeException(nameof(row), row, $"{Name} holds {Count} latents");
        if (destination.Length != RowElements) throw new ArgumentException($"the destination holds {destination.Length} floats, a latent {RowElements}", nameof(destination));
        var start = flipped
            ? _flippedOffset ?? throw new InvalidDataException($"{Name} holds no flipped latents ('{LatentShard.FlippedKey}')")
            : _latentsOffset;
        if (!_bfloat16)
        {
            var bytes = MemoryMarshal.AsBytes(destination);
            ReadExactly(bytes, start + row * bytes.Length);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("latent shards are little-endian");
            return;
        }
        var raw = new byte[RowElements * 2];
        ReadExactly(raw, start + row * raw.LongLength);
        for (var i = 0; i < destination.Length; i++)
            destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(i * 2, 2)) << 16);
    }

    private void ReadExactly(Span<byte> buffer, long offset)
    {
        var done = 0;
        while (done < buffer.Length)
        {
            var read = RandomAccess.Read(_handle, buffer[done..], offset + done);
            if (read == 0) throw new InvalidDataException($"{Name} is truncated at byte {offset + done}");
            done += read;
        }
    }

    public void Dispose() => _handle.Dispose();
}
