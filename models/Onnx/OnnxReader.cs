using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace RAE.Models.Onnx;

/// <summary>
/// Reads an ONNX model file into <see cref="OnnxModel"/> through OnnxSharp's classes generated from the official
/// onnx.proto. Supported: ModelProto header fields and opset imports, GraphProto nodes/initializers/inputs/outputs/
/// value_info, NodeProto attributes of type float, int, string, floats and ints, tensor initializers stored inline
/// (raw_data, float_data, int32_data, int64_data, double_data). Anything else that would change the meaning of the
/// model (external data, segments, sparse initializers, graph-valued attributes, ...) is rejected with an error that
/// names it.
/// </summary>
public static class OnnxReader
{
    public static OnnxModel Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model file not found: {path}", path);
        return Parse(File.ReadAllBytes(path), Path.GetFileName(path));
    }

    public static OnnxModel Parse(ReadOnlyMemory<byte> bytes, string sourceName)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the ONNX reader assumes a little-endian host");
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes.Span);
        }
        catch (InvalidProtocolBufferException error)
        {
            throw new InvalidDataException($"{sourceName}: not a readable ONNX model ({error.Message})", error);
        }
        if (model.TrainingInfo.Count > 0) throw new NotSupportedException($"{sourceName}: training_info is not supported");
        if (model.Functions.Count > 0) throw new NotSupportedException($"{sourceName}: model-local functions are not supported");
        if (model.Graph is null) throw new InvalidDataException($"{sourceName}: the file holds no graph (is it an ONNX model?)");
        var opsets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var opset in model.OpsetImport) opsets[opset.Domain] = opset.Version;
        return new OnnxModel(model.IrVersion, model.ProducerName, model.ProducerVersion, opsets, ReadGraph(model.Graph, $"{sourceName}: graph"), sourceName);
    }

    private static OnnxGraph ReadGraph(GraphProto graph, string context)
    {
        if (graph.SparseInitializer.Count > 0) throw new NotSupportedException($"{context}: sparse initializers are not supported");
        var nodes = graph.Node.Select((node, index) => ReadNode(node, $"{context}.node[{index}]")).ToList();
        var initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (proto, index) in graph.Initializer.Select((proto, index) => (proto, index)))
        {
            var tensor = ReadTensor(proto, $"{context}.initializer[{index}]");
            if (!initializers.TryAdd(tensor.Name, tensor)) throw new InvalidDataException($"{context}: initializer '{tensor.Name}' appears twice");
        }
        return new OnnxGraph(graph.Name, nodes, initializers,
            graph.Input.Select(ReadValueInfo).ToList(), graph.Output.Select(ReadValueInfo).ToList(), graph.ValueInfo.Select(ReadValueInfo).ToList());
    }

    private static OnnxNode ReadNode(NodeProto node, string context)
    {
        if (node.OpType.Length == 0) throw new InvalidDataException($"{context}: node '{node.Name}' has no op_type");
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        foreach (var (proto, index) in node.Attribute.Select((proto, index) => (proto, index)))
            attributes[proto.Name] = ReadAttribute(proto, $"{context}.attribute[{index}]");
        return new OnnxNode(node.Name, node.OpType, node.Domain, [.. node.Input], [.. node.Output], attributes);
    }

    private static OnnxAttribute ReadAttribute(AttributeProto attribute, string context)
    {
        if (attribute.RefAttrName.Length > 0)
            throw new NotSupportedException($"{context}: attribute '{attribute.Name}' references a function attribute (ref_attr_name)");
        var type = (OnnxAttributeType)attribute.Type;
        if (type is not (OnnxAttributeType.Float or OnnxAttributeType.Int or OnnxAttributeType.String or OnnxAttributeType.Floats or OnnxAttributeType.Ints))
            throw new NotSupportedException($"{context}: attribute '{attribute.Name}' has the unsupported type {type}");
        return new OnnxAttribute(attribute.Name, type, attribute.F, attribute.I, attribute.S.ToStringUtf8(), [.. attribute.Floats], [.. attribute.Ints]);
    }

    private static OnnxTensor ReadTensor(TensorProto tensor, string context)
    {
        var name = tensor.Name;
        if (tensor.Segment is not null) throw new NotSupportedException($"{context}: segmented tensors are not supported");
        if (tensor.StringData.Count > 0) throw new NotSupportedException($"{context}: string tensors are not supported");
        if (tensor.Uint64Data.Count > 0) throw new NotSupportedException($"{context}: uint64_data tensors are not supported");
        if (tensor.ExternalData.Count > 0 || tensor.DataLocation != TensorProto.Types.DataLocation.Default)
            throw new NotSupportedException($"{context}: tensor '{name}' keeps its data in an external file, which is not supported");
        var dataType = (OnnxDataType)tensor.DataType;
        var elementSize = OnnxTensor.ElementSize(dataType, name);
        var typedFields = new (string Field, int Count)[]
        {
            ("float_data", tensor.FloatData.Count), ("int32_data", tensor.Int32Data.Count), ("int64_data", tensor.Int64Data.Count), ("double_data", tensor.DoubleData.Count),
        }.Where(f => f.Count > 0).Select(f => f.Field).ToList();
        var expectedField = dataType switch
        {
            OnnxDataType.Float => "float_data",
            OnnxDataType.Double => "double_data",
            OnnxDataType.Int64 => "int64_data",
            _ => "int32_data",
        };
        var hasRaw = !tensor.RawData.IsEmpty;
        if (typedFields.Count > 1 || (typedFields.Count == 1 && typedFields[0] != expectedField) || (hasRaw && typedFields.Count > 0))
            throw new InvalidDataException(
                $"{context}: tensor '{name}' of type {dataType} stores its values in {string.Join(", ", typedFields)}{(hasRaw ? " and raw_data" : "")}; expected raw_data or {expectedField}");
        byte[] data = typedFields.FirstOrDefault() switch
        {
            "float_data" => MemoryMarshal.AsBytes(tensor.FloatData.ToArray().AsSpan()).ToArray(),
            "double_data" => MemoryMarshal.AsBytes(tensor.DoubleData.ToArray().AsSpan()).ToArray(),
            "int64_data" => IntegersToBytes([.. tensor.Int64Data], dataType, elementSize, name),
            "int32_data" => IntegersToBytes([.. tensor.Int32Data.Select(v => (long)v)], dataType, elementSize, name),
            _ => tensor.RawData.ToByteArray(),
        };
        return new OnnxTensor(name, [.. tensor.Dims], dataType, data);
    }

    /// <summary>int32_data also carries int8/uint8 elements (one per value); int64_data carries int64.</summary>
    private static byte[] IntegersToBytes(long[] values, OnnxDataType dataType, int elementSize, string name)
    {
        if (values.Length > int.MaxValue / elementSize) throw new InvalidDataException($"initializer '{name}' holds too many values ({values.Length})");
        var data = new byte[values.Length * elementSize];
        for (var i = 0; i < values.Length; i++)
        {
            var slot = data.AsSpan(i * elementSize, elementSize);
            switch (dataType)
            {
                case OnnxDataType.Int64: BinaryPrimitives.WriteInt64LittleEndian(slot, values[i]); break;
                case OnnxDataType.Int32: BinaryPrimitives.WriteInt32LittleEndian(slot, (int)values[i]); break;
                case OnnxDataType.Int8 or OnnxDataType.UInt8: slot[0] = unchecked((byte)values[i]); break;
                default: throw new InvalidDataException($"initializer '{name}' of type {dataType} stores its values as integers");
            }
        }
        return data;
    }

    /// <summary>A tensor-typed value; sequence, map and optional types keep element type Undefined and no shape.</summary>
    private static OnnxValueInfo ReadValueInfo(ValueInfoProto value)
    {
        var tensorType = value.Type?.TensorType;
        if (tensorType is null) return new OnnxValueInfo(value.Name, OnnxDataType.Undefined, null);
        var shape = tensorType.Shape?.Dim.Select(dim => new OnnxDimension(
            dim.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? dim.DimValue : null,
            dim.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? dim.DimParam : null)).ToList();
        return new OnnxValueInfo(value.Name, (OnnxDataType)tensorType.ElemType, shape);
    }
}
