using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace RAE.Models.Onnx;

/// <summary>
/// Reads an ONNX model file into <see cref="OnnxModel"/> with a hand-written protobuf decoder (no protobuf package).
/// Supported: ModelProto header fields and opset imports, GraphProto nodes/initializers/inputs/outputs/value_info,
/// NodeProto attributes of type float, int, string, floats and ints, tensor initializers stored inline
/// (raw_data, float_data, int32_data, int64_data, double_data). Anything else that would change the meaning of the
/// model (external data, segments, sparse initializers, graph-valued attributes, ...) is rejected with an error that
/// names the field. Field numbers follow onnx/onnx.proto.
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
        var reader = new ProtobufReader(bytes, sourceName);
        long irVersion = 0;
        string producerName = "", producerVersion = "";
        var opsets = new Dictionary<string, long>(StringComparer.Ordinal);
        OnnxGraph? graph = null;
        while (!reader.AtEnd)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1: irVersion = reader.ReadInt64(); break;
                case 2: producerName = reader.ReadString(); break;
                case 3: producerVersion = reader.ReadString(); break;
                case 7:
                    if (graph is not null) throw reader.Corrupt("the model holds more than one graph");
                    graph = ReadGraph(reader.ReadMessage($"{sourceName}: graph"));
                    break;
                case 8:
                    var (domain, version) = ReadOpset(reader.ReadMessage($"{sourceName}: opset_import"));
                    opsets[domain] = version;
                    break;
                case 20: throw new NotSupportedException($"{sourceName}: training_info (ModelProto field 20) is not supported");
                case 25: throw new NotSupportedException($"{sourceName}: model-local functions (ModelProto field 25) are not supported");
                default: reader.Skip(wireType); break; // domain, model_version, doc_string, metadata_props
            }
        }
        if (graph is null) throw new InvalidDataException($"{sourceName}: the file holds no graph (is it an ONNX model?)");
        return new OnnxModel(irVersion, producerName, producerVersion, opsets, graph, sourceName);
    }

    private static (string Domain, long Version) ReadOpset(ProtobufReader reader)
    {
        string domain = "";
        long version = 0;
        while (!reader.AtEnd)
        {
            var field = reader.ReadTag(out var wireType);
            if (field == 1) domain = reader.ReadString();
            else if (field == 2) version = reader.ReadInt64();
            else reader.Skip(wireType);
        }
        return (domain, version);
    }

    private static OnnxGraph ReadGraph(ProtobufReader reader)
    {
        string name = "";
        var nodes = new List<OnnxNode>();
        var initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        List<OnnxValueInfo> inputs = [], outputs = [], valueInfos = [];
        while (!reader.AtEnd)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1: nodes.Add(ReadNode(reader.ReadMessage($"{reader.Context}.node[{nodes.Count}]"))); break;
                case 2: name = reader.ReadString(); break;
                case 5:
                    var tensor = ReadTensor(reader.ReadMessage($"{reader.Context}.initializer[{initializers.Count}]"));
                    if (!initializers.TryAdd(tensor.Name, tensor))
                        throw new InvalidDataException($"{reader.Context}: initializer '{tensor.Name}' appears twice");
                    break;
                case 11: inputs.Add(ReadValueInfo(reader.ReadMessage($"{reader.Context}.input[{inputs.Count}]"))); break;
                case 12: outputs.Add(ReadValueInfo(reader.ReadMessage($"{reader.Context}.output[{outputs.Count}]"))); break;
                case 13: valueInfos.Add(ReadValueInfo(reader.ReadMessage($"{reader.Context}.value_info[{valueInfos.Count}]"))); break;
                case 15: throw new NotSupportedException($"{reader.Context}: sparse initializers (GraphProto field 15) are not supported");
                default: reader.Skip(wireType); break; // doc_string, quantization_annotation, metadata
            }
        }
        return new OnnxGraph(name, nodes, initializers, inputs, outputs, valueInfos);
    }

    private static OnnxNode ReadNode(ProtobufReader reader)
    {
        string name = "", opType = "", domain = "";
        List<string> inputs = [], outputs = [];
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        while (!reader.AtEnd)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1: inputs.Add(reader.ReadString()); break;
                case 2: outputs.Add(reader.ReadString()); break;
                case 3: name = reader.ReadString(); break;
                case 4: opType = reader.ReadString(); break;
                case 5:
                    var attribute = ReadAttribute(reader.ReadMessage($"{reader.Context}.attribute[{attributes.Count}]"));
                    attributes[attribute.Name] = attribute;
                    break;
                case 7: domain = reader.ReadString(); break;
                default: reader.Skip(wireType); break; // doc_string, overload, metadata
            }
        }
        if (opType.Length == 0) throw new InvalidDataException($"{reader.Context}: node '{name}' has no op_type");
        return new OnnxNode(name, opType, domain, inputs, outputs, attributes);
    }

    private static OnnxAttribute ReadAttribute(ProtobufReader reader)
    {
        string name = "", text = "";
        var type = OnnxAttributeType.Undefined;
        float single = 0;
        long integer = 0;
        List<byte> floatBytes = [];
        List<long> ints = [];
        while (!reader.AtEnd)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1: name = reader.ReadString(); break;
                case 2: reader.RequireWireType(wireType, WireType.Fixed32, "attribute f"); single = reader.ReadFixedFloat(); break;
                case 3: integer = reader.ReadInt64(); break;
                case 4: text = reader.ReadString(); break;
                case 7: reader.ReadRepeatedFixed(wireType, floatBytes, 4); break;
                case 8: reader.ReadRepeatedInt64(wireType, ints); break;
                case 20: type = (OnnxAttributeType)reader.ReadInt32(); break;
                case 21: throw new NotSupportedException($"{reader.Context}: attribute '{name}' references a function attribute (ref_attr_name)");
                default: reader.Skip(wireType); break; // t, g, strings, tensors, ... rejected below through their type
            }
        }
        if (type is not (OnnxAttributeType.Float or OnnxAttributeType.Int or OnnxAttributeType.String
            or OnnxAttributeType.Floats or OnnxAttributeType.Ints))
            throw new NotSupportedException($"{reader.Context}: attribute '{name}' has the unsupported type {type}");
        var floats = MemoryMarshal.Cast<byte, float>(CollectionsMarshal.AsSpan(floatBytes)).ToArray();
        return new OnnxAttribute(name, type, single, integer, text, floats, ints);
    }

    private static OnnxTensor ReadTensor(ProtobufReader reader)
    {
        string name = "";
        var dims = new List<long>();
        var dataType = OnnxDataType.Undefined;
        ReadOnlyMemory<byte>? raw = null;
        List<byte> fixedBytes = [];
        List<long> varints = [];
        var typedFields = new HashSet<int>();
        while (!reader.AtEnd)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1: reader.ReadRepeatedInt64(wireType, dims); break;
                case 2: dataType = (OnnxDataType)reader.ReadInt32(); break;
                case 3: throw new NotSupportedException($"{reader.Context}: segmented tensors (TensorProto field 3) are not supported");
                case 4 or 10:
                    reader.ReadRepeatedFixed(wireType, fixedBytes, field == 4 ? 4 : 8);
                    typedFields.Add(field);
                    break;
                case 5 or 7:
                    reader.ReadRepeatedInt64(wireType, varints);
                    typedFields.Add(field);
                    break;
                case 6: throw new NotSupportedException($"{reader.Context}: string tensors are not supported");
                case 8: name = reader.ReadString(); break;
                case 9: raw = reader.ReadBytes(); break;
                case 11: throw new NotSupportedException($"{reader.Context}: uint64_data tensors are not supported");
                case 13: throw new NotSupportedException($"{reader.Context}: tensor '{name}' keeps its data in an external file, which is not supported");
                case 14:
                    if (reader.ReadInt32() != 0)
                        throw new NotSupportedException($"{reader.Context}: tensor '{name}' keeps its data in an external file, which is not supported");
                    break;
                default: reader.Skip(wireType); break; // doc_string, metadata
            }
        }
        var elementSize = OnnxTensor.ElementSize(dataType, name);
        var expectedField = dataType switch
        {
            OnnxDataType.Float => 4,
            OnnxDataType.Double => 10,
            OnnxDataType.Int64 => 7,
            _ => 5,
        };
        if (typedFields.Count > 1 || (typedFields.Count == 1 && !typedFields.Contains(expectedField)) || (raw is not null && typedFields.Count > 0))
            throw new InvalidDataException(
                $"{reader.Context}: tensor '{name}' of type {dataType} stores its values in TensorProto field(s) {string.Join(", ", typedFields)}{(raw is null ? "" : " and raw_data")}; expected raw_data or field {expectedField}");
        byte[] data;
        if (raw is { } rawBytes) data = rawBytes.ToArray();
        else if (fixedBytes.Count > 0) data = [.. fixedBytes];
        else data = VarintsToBytes(varints, dataType, elementSize, name);
        return new OnnxTensor(name, [.. dims], dataType, data);
    }

    /// <summary>int32_data also carries int8/uint8 elements (one per varint); int64_data carries int64.</summary>
    private static byte[] VarintsToBytes(List<long> values, OnnxDataType dataType, int elementSize, string name)
    {
        if (values.Count > int.MaxValue / elementSize) throw new InvalidDataException($"initializer '{name}' holds too many values ({values.Count})");
        var data = new byte[values.Count * elementSize];
        for (var i = 0; i < values.Count; i++)
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

    private static OnnxValueInfo ReadValueInfo(ProtobufReader reader)
    {
        string name = "";
        var elementType = OnnxDataType.Undefined;
        List<OnnxDimension>? shape = null;
        while (!reader.AtEnd)
        {
            var field = reader.ReadTag(out var wireType);
            if (field == 1) name = reader.ReadString();
            else if (field == 2) (elementType, shape) = ReadTensorType(reader.ReadMessage($"{reader.Context}.type"));
            else reader.Skip(wireType);
        }
        return new OnnxValueInfo(name, elementType, shape);
    }

    private static (OnnxDataType, List<OnnxDimension>?) ReadTensorType(ProtobufReader typeReader)
    {
        var elementType = OnnxDataType.Undefined;
        List<OnnxDimension>? shape = null;
        while (!typeReader.AtEnd)
        {
            var field = typeReader.ReadTag(out var wireType);
            if (field != 1)
            {
                typeReader.Skip(wireType); // sequence/map/optional types: left as Undefined
                continue;
            }
            var tensorType = typeReader.ReadMessage($"{typeReader.Context}.tensor_type");
            while (!tensorType.AtEnd)
            {
                var tensorField = tensorType.ReadTag(out var tensorWire);
                if (tensorField == 1) elementType = (OnnxDataType)tensorType.ReadInt32();
                else if (tensorField == 2) shape = ReadShape(tensorType.ReadMessage($"{tensorType.Context}.shape"));
                else tensorType.Skip(tensorWire);
            }
        }
        return (elementType, shape);
    }

    private static List<OnnxDimension> ReadShape(ProtobufReader shapeReader)
    {
        var dims = new List<OnnxDimension>();
        while (!shapeReader.AtEnd)
        {
            var field = shapeReader.ReadTag(out var wireType);
            if (field != 1)
            {
                shapeReader.Skip(wireType);
                continue;
            }
            var dim = shapeReader.ReadMessage($"{shapeReader.Context}.dim[{dims.Count}]");
            long? value = null;
            string? parameter = null;
            while (!dim.AtEnd)
            {
                var dimField = dim.ReadTag(out var dimWire);
                if (dimField == 1) value = dim.ReadInt64();
                else if (dimField == 2) parameter = dim.ReadString();
                else dim.Skip(dimWire);
            }
            dims.Add(new OnnxDimension(value, parameter));
        }
        return dims;
    }
}
