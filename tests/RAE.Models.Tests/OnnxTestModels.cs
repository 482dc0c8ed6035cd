using WireType = Google.Protobuf.WireFormat.WireType;
using System.Text;
using Google.Protobuf;
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
    /// With <paramref name="inputShape"/> the graph inputs are redeclared with that shape and the graph's value_info
    /// (intermediate shapes fixed for the old size) is dropped.
    /// </summary>
    public static byte[] WithGraphEdits(byte[] model, IEnumerable<string> extraOutputs, long[]? inputShape = null)
    {
        var proto = global::Onnx.ModelProto.Parser.ParseFrom(model);
        var graph = proto.Graph;
        if (inputShape is not null)
        {
            var inputs = graph.Input.Select(input => FloatValueInfo(input.Name, inputShape)).ToList();
            graph.Input.Clear();
            graph.Input.AddRange(inputs);
            graph.ValueInfo.Clear();
        }
        graph.Output.AddRange(extraOutputs.Select(name => FloatValueInfo(name)));
        return proto.ToByteArray();
    }

    /// <summary>ValueInfoProto {name, type: tensor_type {elem_type: FLOAT, shape (when given)}}.</summary>
    private static global::Onnx.ValueInfoProto FloatValueInfo(string name, long[]? shape = null)
    {
        var tensorType = new global::Onnx.TypeProto.Types.Tensor { ElemType = (int)OnnxDataType.Float };
        if (shape is not null)
        {
            tensorType.Shape = new global::Onnx.TensorShapeProto();
            tensorType.Shape.Dim.AddRange(shape.Select(dim => new global::Onnx.TensorShapeProto.Types.Dimension { DimValue = dim }));
        }
        return new global::Onnx.ValueInfoProto { Name = name, Type = new global::Onnx.TypeProto { TensorType = tensorType } };
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
