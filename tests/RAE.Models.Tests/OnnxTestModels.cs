using System.Text;
using RAE.Models.Onnx;

namespace RAE.Models.Tests;

/// <summary>Writes protobuf fields for hand-built ONNX test models.</summary>
public sealed class ProtobufWriter
{
    private readonly MemoryStream _stream = new();

    public byte[] ToArray() => _stream.ToArray();

    public ProtobufWriter Varint(int field, long value)
    {
        Tag(field, WireType.Varint);
        WriteVarint(unchecked((ulong)value));
        return this;
    }

    public ProtobufWriter Bytes(int field, byte[] data)
    {
        Tag(field, WireType.LengthDelimited);
        WriteVarint((ulong)data.Length);
        _stream.Write(data);
        return this;
    }

    public ProtobufWriter String(int field, string text) => Bytes(field, Encoding.UTF8.GetBytes(text));

    public ProtobufWriter Message(int field, ProtobufWriter message) => Bytes(field, message.ToArray());

    public ProtobufWriter Fixed32(int field, float value)
    {
        Tag(field, WireType.Fixed32);
        _stream.Write(BitConverter.GetBytes(value));
        return this;
    }

    public ProtobufWriter PackedFloats(int field, params float[] values) =>
        Bytes(field, values.SelectMany(BitConverter.GetBytes).ToArray());

    public ProtobufWriter PackedVarints(int field, params long[] values)
    {
        var packed = new ProtobufWriter();
        foreach (var value in values) packed.WriteVarint(unchecked((ulong)value));
        return Bytes(field, packed.ToArray());
    }

    public ProtobufWriter Raw(ReadOnlySpan<byte> bytes)
    {
        _stream.Write(bytes);
        return this;
    }

    private void Tag(int field, WireType wireType) => WriteVarint((ulong)((field << 3) | (int)wireType));

    private void WriteVarint(ulong value)
    {
        while (value >= 0x80)
        {
            _stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _stream.WriteByte((byte)value);
    }
}

public static class OnnxTestModels
{
    /// <summary>
    /// Returns a copy of the model with extra float graph outputs, so ONNX Runtime also returns intermediate values
    /// (the graph message is rewritten with the new output ValueInfoProtos appended; other fields are copied as bytes).
    /// </summary>
    public static byte[] WithExtraOutputs(byte[] model, IEnumerable<string> outputNames)
    {
        var result = new ProtobufWriter();
        var reader = new ProtobufReader(model, "model");
        while (!reader.AtEnd)
        {
            var start = reader.Position;
            var field = reader.ReadTag(out var wireType);
            if (field != 7)
            {
                reader.Skip(wireType);
                result.Raw(model.AsSpan(start, reader.Position - start));
                continue;
            }
            var graph = new ProtobufWriter().Raw(reader.ReadBytes().Span);
            foreach (var name in outputNames) graph.Message(12, FloatValueInfo(name));
            result.Message(7, graph);
        }
        return result.ToArray();
    }

    /// <summary>ValueInfoProto {name, type: tensor_type {elem_type: FLOAT}} with no shape.</summary>
    public static ProtobufWriter FloatValueInfo(string name) =>
        new ProtobufWriter().String(1, name)
            .Message(2, new ProtobufWriter().Message(1, new ProtobufWriter().Varint(1, (long)OnnxDataType.Float)));

    /// <summary>A model whose graph holds the given initializers and nodes (already encoded).</summary>
    public static byte[] Model(IEnumerable<ProtobufWriter> initializers, IEnumerable<ProtobufWriter>? nodes = null)
    {
        var graph = new ProtobufWriter().String(2, "test_graph");
        foreach (var node in nodes ?? []) graph.Message(1, node);
        foreach (var initializer in initializers) graph.Message(5, initializer);
        return new ProtobufWriter()
            .Varint(1, 8)
            .Message(8, new ProtobufWriter().String(1, "").Varint(2, 17))
            .Message(7, graph)
            .ToArray();
    }
}
