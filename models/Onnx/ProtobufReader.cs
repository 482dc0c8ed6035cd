using System.Buffers.Binary;
using System.Text;

namespace RAE.Models.Onnx;

/// <summary>Protobuf wire types (the low three bits of a field tag).</summary>
public enum WireType
{
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

/// <summary>
/// A forward-only reader of the protobuf wire format over a byte buffer. It knows nothing about schemas: callers read a
/// tag, switch on the field number and read the value with the matching method (or <see cref="Skip"/> it).
/// </summary>
public sealed class ProtobufReader
{
    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly string _context;
    private int _position;

    /// <param name="buffer">The message bytes.</param>
    /// <param name="context">Names the message in error messages (for example "ResNet18.onnx: graph.node[3]").</param>
    public ProtobufReader(ReadOnlyMemory<byte> buffer, string context)
    {
        _buffer = buffer;
        _context = context;
    }

    public bool AtEnd => _position >= _buffer.Length;

    /// <summary>Offset of the next unread byte within this reader's buffer.</summary>
    public int Position => _position;

    public string Context => _context;

    /// <summary>Reads the next field tag; returns the field number and sets <paramref name="wireType"/>.</summary>
    public int ReadTag(out WireType wireType)
    {
        var tag = ReadVarint();
        var fieldNumber = tag >> 3;
        wireType = (WireType)(tag & 7);
        if (fieldNumber == 0 || fieldNumber > int.MaxValue)
            throw Corrupt($"invalid field number {fieldNumber}");
        if (wireType is not (WireType.Varint or WireType.Fixed64 or WireType.LengthDelimited or WireType.Fixed32))
            throw Corrupt($"field {fieldNumber} uses the unsupported wire type {(int)wireType} (groups are not supported)");
        return (int)fieldNumber;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        var span = _buffer.Span;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (_position >= span.Length) throw Corrupt("the data ends inside a varint");
            var current = span[_position++];
            result |= (ulong)(current & 0x7F) << shift;
            if (current < 0x80) return result;
        }
        throw Corrupt("a varint is longer than 10 bytes");
    }

    public long ReadInt64() => unchecked((long)ReadVarint());

    public int ReadInt32() => unchecked((int)ReadVarint());

    public float ReadFixedFloat() => BinaryPrimitives.ReadSingleLittleEndian(Take(4).Span);

    public double ReadFixedDouble() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8).Span);

    public ReadOnlyMemory<byte> ReadBytes()
    {
        var length = ReadVarint();
        if (length > (ulong)(_buffer.Length - _position))
            throw Corrupt($"a length-delimited field claims {length} bytes but only {_buffer.Length - _position} remain");
        return Take((int)length);
    }

    public string ReadString() => Encoding.UTF8.GetString(ReadBytes().Span);

    /// <summary>A reader over an embedded message.</summary>
    public ProtobufReader ReadMessage(string childContext) => new(ReadBytes(), childContext);

    /// <summary>Reads one element (unpacked) or a packed run of varints, appending to <paramref name="target"/>.</summary>
    public void ReadRepeatedInt64(WireType wireType, List<long> target)
    {
        if (wireType == WireType.Varint)
        {
            target.Add(ReadInt64());
            return;
        }
        RequireWireType(wireType, WireType.LengthDelimited, "a repeated integer");
        var packed = new ProtobufReader(ReadBytes(), _context);
        while (!packed.AtEnd) target.Add(packed.ReadInt64());
    }

    public void Skip(WireType wireType)
    {
        switch (wireType)
        {
            case WireType.Varint: ReadVarint(); break;
            case WireType.Fixed64: Take(8); break;
            case WireType.Fixed32: Take(4); break;
            case WireType.LengthDelimited: ReadBytes(); break;
            default: throw Corrupt($"cannot skip wire type {(int)wireType}");
        }
    }

    public void RequireWireType(WireType actual, WireType expected, string what)
    {
        if (actual != expected) throw Corrupt($"{what} has wire type {(int)actual}, expected {(int)expected}");
    }

    public InvalidDataException Corrupt(string problem) =>
        new($"{_context}: malformed protobuf at byte {_position}: {problem}");

    /// <summary>Reads one fixed-size value (unpacked) or a packed run, appending their little-endian bytes.</summary>
    public void ReadRepeatedFixed(WireType wireType, List<byte> target, int elementSize)
    {
        var expected = elementSize == 4 ? WireType.Fixed32 : WireType.Fixed64;
        if (wireType == expected)
        {
            target.AddRange(Take(elementSize).Span);
            return;
        }
        RequireWireType(wireType, WireType.LengthDelimited, $"a repeated {elementSize * 8}-bit fixed field");
        var bytes = ReadBytes();
        if (bytes.Length % elementSize != 0)
            throw Corrupt($"a packed run of {elementSize}-byte values has {bytes.Length} bytes");
        target.AddRange(bytes.Span);
    }

    private ReadOnlyMemory<byte> Take(int count)
    {
        if (count > _buffer.Length - _position)
            throw Corrupt($"needs {count} more bytes but only {_buffer.Length - _position} remain");
        var slice = _buffer.Slice(_position, count);
        _position += count;
        return slice;
    }
}
