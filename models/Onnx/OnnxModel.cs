using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Onnx;

/// <summary>The parts of an ONNX ModelProto that this reader understands.</summary>
public sealed record OnnxModel(
    long IrVersion,
    string ProducerName,
    string ProducerVersion,
    IReadOnlyDictionary<string, long> OpsetImports,
    OnnxGraph Graph,
    string SourceName);

/// <summary>A GraphProto: nodes in file order (ONNX requires topological order), initializers and declared values.</summary>
public sealed record OnnxGraph(
    string Name,
    IReadOnlyList<OnnxNode> Nodes,
    IReadOnlyDictionary<string, OnnxTensor> Initializers,
    IReadOnlyList<OnnxValueInfo> Inputs,
    IReadOnlyList<OnnxValueInfo> Outputs,
    IReadOnlyList<OnnxValueInfo> ValueInfos)
{
    /// <summary>The graph inputs that are not initializers (the values a caller feeds).</summary>
    public IEnumerable<OnnxValueInfo> FedInputs => Inputs.Where(input => !Initializers.ContainsKey(input.Name));

    public OnnxTensor Initializer(string name) =>
        Initializers.TryGetValue(name, out var tensor)
            ? tensor
            : throw new KeyNotFoundException($"graph '{Name}' has no initializer named '{name}'");
}

public sealed record OnnxNode(
    string Name,
    string OpType,
    string Domain,
    IReadOnlyList<string> Inputs,
    IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxAttribute> Attributes)
{
    public string Describe() => $"{OpType} node '{Name}' ({string.Join(", ", Inputs)} -> {string.Join(", ", Outputs)})";

    public bool HasAttribute(string name) => Attributes.ContainsKey(name);

    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) ? a.AsInt(this) : fallback;

    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) ? a.AsFloat(this) : fallback;

    public string String(string name, string fallback) =>
        Attributes.TryGetValue(name, out var a) ? a.AsString(this) : fallback;

    public IReadOnlyList<long> Ints(string name, IReadOnlyList<long> fallback) =>
        Attributes.TryGetValue(name, out var a) ? a.AsInts(this) : fallback;

    public IReadOnlyList<long> RequiredInts(string name) =>
        Attributes.TryGetValue(name, out var a)
            ? a.AsInts(this)
            : throw new InvalidDataException($"{Describe()} lacks the required attribute '{name}'");
}

/// <summary>ONNX AttributeProto.AttributeType values.</summary>
public enum OnnxAttributeType
{
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8,
    Tensors = 9,
    Graphs = 10,
    SparseTensor = 11,
    SparseTensors = 12,
    TypeProto = 13,
    TypeProtos = 14,
}

public sealed record OnnxAttribute(
    string Name,
    OnnxAttributeType Type,
    float FloatValue,
    long IntValue,
    string StringValue,
    IReadOnlyList<float> Floats,
    IReadOnlyList<long> Ints)
{
    public long AsInt(OnnxNode owner) => Type == OnnxAttributeType.Int ? IntValue : throw WrongType(owner, "an int");

    public float AsFloat(OnnxNode owner) => Type == OnnxAttributeType.Float ? FloatValue : throw WrongType(owner, "a float");

    public string AsString(OnnxNode owner) =>
        Type == OnnxAttributeType.String ? StringValue : throw WrongType(owner, "a string");

    public IReadOnlyList<long> AsInts(OnnxNode owner) =>
        Type == OnnxAttributeType.Ints ? Ints : throw WrongType(owner, "a list of ints");

    private InvalidDataException WrongType(OnnxNode owner, string wanted) =>
        new($"{owner.Describe()}: attribute '{Name}' is {Type}, expected {wanted}");
}

/// <summary>ONNX TensorProto.DataType values this reader can turn into tensors.</summary>
public enum OnnxDataType
{
    Undefined = 0,
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
    Double = 11,
}

/// <summary>An initializer: shape, element type and the little-endian element bytes.</summary>
public sealed class OnnxTensor
{
    public OnnxTensor(string name, long[] dims, OnnxDataType dataType, byte[] data)
    {
        Name = name;
        Dims = dims;
        DataType = dataType;
        Data = data;
        if (dims.Any(dim => dim < 0))
            throw new InvalidDataException($"initializer '{name}' has a negative dimension in [{string.Join(", ", dims)}]");
        // Checked: dims come from the file, and a wrapped product could match a short buffer.
        long expectedBytes;
        try
        {
            expectedBytes = checked(ElementCount * ElementSize(dataType, name));
        }
        catch (OverflowException)
        {
            throw new InvalidDataException($"initializer '{name}' has dims [{string.Join(", ", dims)}], whose size overflows 64 bits");
        }
        if (data.Length != expectedBytes)
            throw new InvalidDataException(
                $"initializer '{name}' of shape [{string.Join(", ", dims)}] and type {dataType} needs {expectedBytes} bytes but holds {data.Length}");
    }

    public string Name { get; }

    public IReadOnlyList<long> Dims { get; }

    public OnnxDataType DataType { get; }

    /// <summary>Element bytes, little-endian, row-major.</summary>
    public byte[] Data { get; }

    public long ElementCount => Dims.Aggregate(1L, (product, dim) => checked(product * dim));

    /// <summary>A new CPU tensor holding a copy of the data; the caller owns it.</summary>
    public Tensor ToTensor()
    {
        var tensor = empty(Dims.ToArray(), ScalarTypeOf(DataType));
        if (Data.Length > 0) tensor.bytes = Data;
        return tensor;
    }

    public float[] ToFloatArray()
    {
        if (DataType != OnnxDataType.Float)
            throw new InvalidOperationException($"initializer '{Name}' is {DataType}, not Float");
        var values = new float[ElementCount];
        Buffer.BlockCopy(Data, 0, values, 0, Data.Length);
        return values;
    }

    public static int ElementSize(OnnxDataType dataType, string tensorName) => dataType switch
    {
        OnnxDataType.Float or OnnxDataType.Int32 => 4,
        OnnxDataType.UInt8 or OnnxDataType.Int8 => 1,
        OnnxDataType.Int64 or OnnxDataType.Double => 8,
        _ => throw new NotSupportedException($"initializer '{tensorName}' has the unsupported ONNX data type {(int)dataType}"),
    };

    private static ScalarType ScalarTypeOf(OnnxDataType dataType) => dataType switch
    {
        OnnxDataType.Float => ScalarType.Float32,
        OnnxDataType.UInt8 => ScalarType.Byte,
        OnnxDataType.Int8 => ScalarType.Int8,
        OnnxDataType.Int32 => ScalarType.Int32,
        OnnxDataType.Int64 => ScalarType.Int64,
        OnnxDataType.Double => ScalarType.Float64,
        _ => throw new NotSupportedException($"ONNX data type {dataType} has no tensor mapping"),
    };
}

/// <summary>A ValueInfoProto of tensor type. Each dimension is a fixed size or a symbolic name (or unknown: both null).</summary>
public sealed record OnnxValueInfo(string Name, OnnxDataType ElementType, IReadOnlyList<OnnxDimension>? Shape);

public sealed record OnnxDimension(long? Value, string? Parameter)
{
    public override string ToString() => Value?.ToString() ?? Parameter ?? "?";
}
