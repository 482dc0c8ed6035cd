using TorchSharp;

namespace RAE.Models.IO;

/// <summary>A tensor storage named by a checkpoint's pickle: the zip entry <c>data/{Key}</c> holding <c>Numel</c> elements.</summary>
public sealed record StorageReference(string Key, torch.ScalarType Dtype, long Numel, string Location);

/// <summary>
/// A tensor described by a checkpoint's pickle but not yet read: a strided view into a storage. Reading it is
/// deferred so that loading one entry of a training checkpoint (e.g. <c>ema</c>) never reads the others.
/// </summary>
public sealed record TensorReference(StorageReference Storage, long StorageOffset, long[] Shape, long[] Stride, bool RequiresGrad)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));

    public override string ToString() => $"tensor {Storage.Dtype} [{string.Join(", ", Shape)}] (storage {Storage.Key})";
}

/// <summary>The fixed list of Python globals a PyTorch checkpoint may reference; nothing else is ever resolved.</summary>
internal sealed class TorchPickleGlobals(string source, bool allowUnknownGlobals, Func<PickleTuple, StorageReference> loadStorage, ReaderLimits limits)
    : IPickleResolver
{
    private static readonly Dictionary<string, torch.ScalarType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["torch.FloatStorage"] = torch.ScalarType.Float32,
        ["torch.DoubleStorage"] = torch.ScalarType.Float64,
        ["torch.HalfStorage"] = torch.ScalarType.Float16,
        ["torch.BFloat16Storage"] = torch.ScalarType.BFloat16,
        ["torch.LongStorage"] = torch.ScalarType.Int64,
        ["torch.IntStorage"] = torch.ScalarType.Int32,
        ["torch.ShortStorage"] = torch.ScalarType.Int16,
        ["torch.CharStorage"] = torch.ScalarType.Int8,
        ["torch.ByteStorage"] = torch.ScalarType.Byte,
        ["torch.BoolStorage"] = torch.ScalarType.Bool,
        ["torch.UntypedStorage"] = torch.ScalarType.Byte,
    };

    private static readonly HashSet<string> TensorClasses = new(StringComparer.Ordinal)
    {
        "torch.Tensor", "torch.nn.parameter.Parameter", "torch._tensor.Tensor",
    };

    public static IReadOnlyCollection<string> Supported =>
    [
        "collections.OrderedDict", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type_v2",
        "torch.Size", "torch.device", "_codecs.encode", .. StorageTypes.Keys, .. TensorClasses,
    ];

    public static bool TryGetStorageDtype(object? storageType, out torch.ScalarType dtype)
    {
        dtype = default;
        return storageType is PickleClassMarker marker && StorageTypes.TryGetValue(marker.QualifiedName, out dtype);
    }

    public object ResolveGlobal(string module, string name)
    {
        var qualified = $"{module}.{name}";
        if (StorageTypes.ContainsKey(qualified) || TensorClasses.Contains(qualified)) return new PickleClassMarker(qualified);
        return qualified switch
        {
            "collections.OrderedDict" => new PickleFunction(qualified, _ => new PickleDict("collections.OrderedDict")),
            "torch._utils._rebuild_tensor" or "torch._utils._rebuild_tensor_v2" => new PickleFunction(qualified, RebuildTensor),
            "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state" => new PickleFunction(qualified, RebuildParameter),
            "torch._tensor._rebuild_from_type_v2" => new PickleFunction(qualified, RebuildFromType),
            "torch.Size" => new PickleFunction(qualified, args => args.Count == 0 ? PickleTuple.Empty : Expect<PickleTuple>(args[0], "torch.Size argument")),
            "torch.device" => new PickleFunction(qualified, args => string.Join(":", args)),
            "_codecs.encode" => new PickleFunction(qualified, Encode),
            _ when allowUnknownGlobals => new PickleGlobal(module, name),
            _ => throw new CheckpointFormatException(source,
                $"the pickle references the Python global '{qualified}', which this reader does not support (it never runs pickled code). " +
                $"Supported globals: {string.Join(", ", Supported)}. Re-save the needed part (e.g. the state dict) or allow unknown globals to keep them as inert placeholders."),
        };
    }

    public object? PersistentLoad(object? persistentId) => persistentId switch
    {
        PickleTuple { Count: 5 } id when Equals(id[0], "storage") => loadStorage(id),
        _ => throw new CheckpointFormatException(source, $"unsupported persistent id {Unpickler.Describe(persistentId)} (expected ('storage', type, key, location, numel))"),
    };

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]);
    // _rebuild_tensor(storage, storage_offset, size, stride).
    private TensorReference RebuildTensor(PickleTuple args)
    {
        if (args.Count < 4) throw new CheckpointFormatException(source, $"_rebuild_tensor called with {args.Count} arguments, expected at least 4");
        var storage = Expect<StorageReference>(args[0], "tensor storage");
        var offset = Expect<long>(args[1], "storage offset");
        var shape = ToLongs(args[2], "tensor size");
        var stride = ToLongs(args[3], "tensor stride");
        var requiresGrad = args.Count > 4 && args[4] is true;
        if (shape.Length != stride.Length)
            throw new CheckpointFormatException(source, $"tensor in storage {storage.Key} has size [{string.Join(", ", shape)}] but stride [{string.Join(", ", stride)}]");
        if (shape.Length > limits.MaxDimensions)
            throw CheckpointFormatException.LimitExceeded(source, nameof(ReaderLimits.MaxDimensions), limits.MaxDimensions,
                $"a tensor in storage {storage.Key} has {shape.Length} dimensions");
        if (shape.Any(d => d < 0) || stride.Any(s => s < 0) || offset < 0)
            throw new CheckpointFormatException(source, $"tensor in storage {storage.Key} has a negative size, stride or offset");
        CheckViewFitsStorage(storage, offset, shape, stride);
        return new TensorReference(storage, offset, shape, stride, requiresGrad);
    }

    // Checked arithmetic: sizes and strides come from the file, and a wrapped product would pass every bound.
    private void CheckViewFitsStorage(StorageReference storage, long offset, long[] shape, long[] stride)
    {
        var describe = $"tensor [{string.Join(", ", shape)}] with stride [{string.Join(", ", stride)}] at offset {offset}";
        long elements, last;
        try
        {
            elements = shape.Aggregate(1L, (a, b) => checked(a * b));
            last = elements == 0 ? offset - 1 : checked(offset + shape.Zip(stride).Sum(p => checked((p.First - 1) * p.Second)));
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException(source, $"{describe} in storage {storage.Key} overflows 64-bit sizes");
        }
        if (last >= storage.Numel)
            throw new CheckpointFormatException(source, $"{describe} reaches element {last} of storage {storage.Key}, which holds {storage.Numel}");
        // A stride-0 or overlapping view passes the bound above however many elements it has; reading it would
        // materialise all of them from a storage of a few bytes.
        if ((double)elements > (double)storage.Numel * limits.MaxViewExpansion)
            throw CheckpointFormatException.LimitExceeded(source, nameof(ReaderLimits.MaxViewExpansion), limits.MaxViewExpansion,
                $"{describe} has {elements} elements but its storage {storage.Key} holds only {storage.Numel}");
    }

    // _rebuild_parameter(data, requires_grad, backward_hooks[, state]).
    private TensorReference RebuildParameter(PickleTuple args)
    {
        if (args.Count < 2) throw new CheckpointFormatException(source, $"_rebuild_parameter called with {args.Count} arguments");
        return Expect<TensorReference>(args[0], "parameter data") with { RequiresGrad = args[1] is true };
    }

    // _rebuild_from_type_v2(func, new_type, args, state): a tensor (sub)class rebuilt by func(*args).
    private object? RebuildFromType(PickleTuple args)
    {
        if (args.Count < 3) throw new CheckpointFormatException(source, "_rebuild_from_type_v2 called with fewer than 3 arguments");
        var function = Expect<PickleFunction>(args[0], "_rebuild_from_type_v2 function");
        if (args[1] is not PickleClassMarker type || !TensorClasses.Contains(type.QualifiedName))
            throw new CheckpointFormatException(source, $"tensor subclass {Unpickler.Describe(args[1])} is not supported");
        return function.Invoke(Expect<PickleTuple>(args[2], "_rebuild_from_type_v2 arguments"));
    }

    private byte[] Encode(PickleTuple args)
    {
        var text = Expect<string>(args[0], "_codecs.encode text");
        var encoding = args.Count > 1 ? Expect<string>(args[1], "_codecs.encode encoding") : "utf-8";
        return encoding.ToLowerInvariant() switch
        {
            "latin1" or "latin-1" or "iso-8859-1" => System.Text.Encoding.Latin1.GetBytes(text),
            "utf-8" or "utf8" => System.Text.Encoding.UTF8.GetBytes(text),
            _ => throw new CheckpointFormatException(source, $"_codecs.encode with encoding '{encoding}' is not supported"),
        };
    }

    private long[] ToLongs(object? value, string what) =>
        Expect<PickleTuple>(value, what).Select(item => Expect<long>(item, what)).ToArray();

    private T Expect<T>(object? value, string what) =>
        value is T typed ? typed : throw new CheckpointFormatException(source, $"{what} is {Unpickler.Describe(value)}, expected {typeof(T).Name}");
}
