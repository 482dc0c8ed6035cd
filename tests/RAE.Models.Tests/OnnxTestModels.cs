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
    /// Returns a copy of the model with extra float graph outputs, so ONNX Runtime also returns intermediate values.
    /// With <paramref name="inputShape"/> the fed input is redeclared with that shape and the graph's value_info
    /// (intermediate shapes fixed for the old size) is dropped. Other fields are copied as bytes.
    /// </summary>
    public static byte[] WithGraphEdits(byte[] model, IEnumerable<string> extraOutputs, long[]? inputShape = null)
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
            var graphBytes = reader.ReadBytes();
            var graphReader = new ProtobufReader(graphBytes, "graph");
            var graph = new ProtobufWriter();
            while (!graphReader.AtEnd)
            {
                var graphStart = graphReader.Position;
                var graphField = graphReader.ReadTag(out var graphWire);
                if (inputShape is not null && graphField is 11 or 13)
                {
                    var body = graphReader.ReadBytes();
                    if (graphField == 11) graph.Message(11, FloatValueInfo(ValueInfoName(body), inputShape));
                    continue;
                }
                graphReader.Skip(graphWire);
                graph.Raw(graphBytes.Span[graphStart..graphReader.Position]);
            }
            foreach (var name in extraOutputs) graph.Message(12, FloatValueInfo(name));
            result.Message(7, graph);
        }
        return result.ToArray();
    }

    /// <summary>ValueInfoProto {name, type: tensor_type {elem_type: FLOAT, shape (when given)}}.</summary>
    public static ProtobufWriter FloatValueInfo(string name, long[]? shape = null)
    {
        var tensorType = new ProtobufWriter().Varint(1, (long)OnnxDataType.Float);
        if (shape is not null)
        {
            var shapeMessage = new ProtobufWriter();
            foreach (var dim in shape) shapeMessage.Message(1, new ProtobufWriter().Varint(1, dim));
            tensorType.Message(2, shapeMessage);
        }
        return new ProtobufWriter().String(1, name).Message(2, new ProtobufWriter().Message(1, tensorType));
    }

    private static string ValueInfoName(ReadOnlyMemory<byte> valueInfo)
    {
        var reader = new ProtobufReader(valueInfo, "value_info");
        while (!reader.AtEnd)
        {
            if (reader.ReadTag(out var wireType) == 1) return reader.ReadString();
            reader.Skip(wireType);
        }
        throw new InvalidDataException("a graph input has no name");
    }

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
