using System.Buffers;
using System.Runtime.InteropServices;
using Orleans.Serialization.Buffers;
using Orleans.Serialization.Cloning;
using Orleans.Serialization.Codecs;
using Orleans.Serialization.Serializers;
using Orleans.Serialization.WireProtocol;

namespace RAE.GrainInterfaces;

/// <summary>
/// fp32 values travelling between a rank and a collective group grain, written to the wire as one block of raw bytes
/// (machine layout, little-endian). A chunk either views a slice of its sender's vector (nothing is copied before the
/// message is serialized) or owns an array rented from <see cref="ArrayPool{T}.Shared"/>, which goes back to the pool
/// once each of its holders has called <see cref="Release"/>. Ownership moves with the message: serializing a chunk
/// counts as the sender's release, and a chunk read from the wire belongs to its receiver. Calls within one silo pass
/// the same instance (<see cref="FloatChunkCopier"/>), so every holder treats the values as read-only.
/// </summary>
public sealed class FloatChunk
{
    private readonly int _offset;
    private readonly bool _owned;
    private float[]? _array;
    private int _holders;

    private FloatChunk(float[] array, int offset, int length, int holders)
    {
        _array = array;
        _offset = offset;
        Length = length;
        _holders = holders;
        _owned = holders > 0;
    }

    public int Length { get; }

    /// <summary>True when the chunk owns a pooled array (false for a view of a caller's vector).</summary>
    public bool IsOwned => _owned;

    public ReadOnlySpan<float> Values => new(Array(), _offset, Length);

    /// <summary>The values of an owned chunk, for the one that fills it before handing it out.</summary>
    public Span<float> WritableValues =>
        _owned ? new Span<float>(Array(), _offset, Length) : throw new InvalidOperationException("A view of a caller's vector is read-only.");

    /// <summary>A read-only view of <paramref name="count"/> values of <paramref name="source"/>; the caller keeps them unchanged until the call returns.</summary>
    public static FloatChunk View(float[] source, int offset, int count)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (offset + count > source.Length)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"A view of {count} values at {offset} does not fit a vector of {source.Length}.");
        return new FloatChunk(source, offset, count, holders: 0);
    }

    /// <summary>A chunk on a pooled array that returns to the pool after <paramref name="holders"/> releases.</summary>
    public static FloatChunk Rent(int length, int holders = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(holders, 1);
        return new FloatChunk(ArrayPool<float>.Shared.Rent(length), 0, length, holders);
    }

    /// <summary>One holder is done with the chunk; the last one returns an owned array to the pool. A view ignores it.</summary>
    public void Release()
    {
        if (!_owned) return;
        var left = Interlocked.Decrement(ref _holders);
        if (left == 0)
        {
            var array = Interlocked.Exchange(ref _array, null);
            if (array is not null) ArrayPool<float>.Shared.Return(array);
        }
        else if (left < 0)
        {
            throw new InvalidOperationException("A collective chunk was released more often than it had holders.");
        }
    }

    private float[] Array() =>
        _array ?? throw new ObjectDisposedException(nameof(FloatChunk), "The collective chunk was used after its last holder released it.");
}

/// <summary>Writes a <see cref="FloatChunk"/> as length-prefixed raw bytes straight from its values and reads it into a pooled array.</summary>
[RegisterSerializer]
public sealed class FloatChunkCodec : IFieldCodec<FloatChunk>
{
    public void WriteField<TBufferWriter>(ref Writer<TBufferWriter> writer, uint fieldIdDelta, Type? expectedType, FloatChunk? value)
        where TBufferWriter : IBufferWriter<byte>
    {
        // Writes null (and a repeated reference) itself.
        if (ReferenceCodec.TryWriteReferenceField(ref writer, fieldIdDelta, expectedType, value) || value is null) return;
        writer.WriteFieldHeader(fieldIdDelta, expectedType, typeof(FloatChunk), WireType.LengthPrefixed);
        var bytes = MemoryMarshal.AsBytes(value.Values);
        writer.WriteVarUInt32((uint)bytes.Length);
        writer.Write(bytes);
        value.Release();
    }

    public FloatChunk ReadValue<TInput>(ref Reader<TInput> reader, Field field)
    {
        if (field.WireType == WireType.Reference) return ReferenceCodec.ReadReference<FloatChunk, TInput>(ref reader, field)!;
        field.EnsureWireType(WireType.LengthPrefixed);
        var byteCount = reader.ReadVarUInt32();
        if (byteCount % sizeof(float) != 0)
            throw new InvalidOperationException($"A collective chunk of {byteCount} bytes is not a whole number of fp32 values.");
        var chunk = FloatChunk.Rent((int)(byteCount / sizeof(float)));
        reader.ReadBytes(MemoryMarshal.AsBytes(chunk.WritableValues));
        ReferenceCodec.RecordObject(reader.Session, chunk);
        return chunk;
    }
}

/// <summary>Within a silo a chunk is passed as is: holders never change its values, and ownership moves with it.</summary>
[RegisterCopier]
public sealed class FloatChunkCopier : IDeepCopier<FloatChunk>, IOptionalDeepCopier
{
    public FloatChunk? DeepCopy(FloatChunk? input, CopyContext context) => input;

    public bool IsShallowCopyable() => true;
}
