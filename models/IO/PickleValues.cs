using System.Collections;
using System.Text;

namespace RAE.Models.IO;

/// <summary>A Python tuple read from a pickle. Compares structurally, so it can serve as a dictionary key.</summary>
public sealed class PickleTuple : IReadOnlyList<object?>, IEquatable<PickleTuple>
{
    public static readonly PickleTuple Empty = new([]);

    private const int MaxDisplayLength = 256;

    private readonly object?[] _items;
    private int? _hashCode;

    public PickleTuple(IReadOnlyList<object?> items)
    {
        _items = items.ToArray();
        var height = 1;
        long elements = 0;
        foreach (var item in _items)
        {
            switch (item)
            {
                case PickleTuple tuple:
                    height = Math.Max(height, tuple.Height + 1);
                    elements += tuple.ElementCount;
                    break;
                case PickleObject instance:
                    height = Math.Max(height, instance.Arguments.Height + 2);
                    elements += instance.Arguments.ElementCount;
                    break;
                default:
                    elements++;
                    break;
            }
        }
        Height = height;
        ElementCount = (int)Math.Min(elements, int.MaxValue);
    }

    /// <summary>Levels of tuples (and unknown objects' argument tuples) from this one down, itself included.</summary>
    internal int Height { get; }

    /// <summary>Leaf elements of this tuple and the tuples inside it (saturates at int.MaxValue).</summary>
    internal int ElementCount { get; }

    public object? this[int index] => _items[index];

    public int Count => _items.Length;

    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)_items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();

    public bool Equals(PickleTuple? other) =>
        other is not null && (ReferenceEquals(this, other)
            || (_items.Length == other._items.Length && GetHashCode() == other.GetHashCode() && _items.Zip(other._items).All(pair => Equals(pair.First, pair.Second))));

    public override bool Equals(object? obj) => Equals(obj as PickleTuple);

    // Cached: a tuple shared through the memo is hashed once, not once per path that reaches it.
    public override int GetHashCode()
    {
        if (_hashCode is { } cached) return cached;
        var hash = new HashCode();
        foreach (var item in _items) hash.Add(item);
        var result = hash.ToHashCode();
        _hashCode = result;
        return result;
    }

    /// <summary>At most a few hundred characters, however large or shared the tuple is.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        AppendTo(text);
        return text.Length > MaxDisplayLength ? text.ToString(0, MaxDisplayLength) + "…" : text.ToString();
    }

    internal void AppendTo(StringBuilder text)
    {
        text.Append('(');
        for (var i = 0; i < _items.Length && text.Length <= MaxDisplayLength; i++)
        {
            if (i > 0) text.Append(", ");
            switch (_items[i])
            {
                case PickleTuple tuple: tuple.AppendTo(text); break;
                case PickleObject instance: instance.AppendTo(text); break;
                case var item: text.Append(item?.ToString() ?? "None"); break;
            }
        }
        text.Append(_items.Length == 1 ? ",)" : ")");
    }
}

/// <summary>
/// A Python dict or collections.OrderedDict read from a pickle, in insertion order. Instance attributes set by
/// BUILD (e.g. the <c>_metadata</c> of a PyTorch state dict) are kept apart from the items, as Python does.
/// </summary>
public sealed class PickleDict : IEnumerable<KeyValuePair<object, object?>>
{
    private readonly OrderedDictionary<object, object?> _items = new();

    public PickleDict(string pythonType = "dict") => PythonType = pythonType;

    /// <summary>"dict" or "collections.OrderedDict".</summary>
    public string PythonType { get; }

    /// <summary>Attributes a BUILD opcode set on the object (its <c>__dict__</c>), not dictionary items.</summary>
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);

    public int Count => _items.Count;

    public IEnumerable<object> Keys => _items.Keys;

    public IEnumerable<object?> Values => _items.Values;

    public object? this[object key]
    {
        get => _items[key];
        set => _items[key] = value;
    }

    public bool ContainsKey(object key) => _items.ContainsKey(key);

    public bool TryGetValue(object key, out object? value) => _items.TryGetValue(key, out value);

    public IEnumerator<KeyValuePair<object, object?>> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A reference to a Python global this reader does not know; only produced when unknown globals are allowed.</summary>
public sealed record PickleGlobal(string Module, string Name)
{
    public string QualifiedName => $"{Module}.{Name}";

    public override string ToString() => QualifiedName;
}

/// <summary>
/// An inert record of an object the reader could not build (a call to, or an instance of, an unknown global).
/// Nothing is executed: the callable, its arguments and any BUILD state are only recorded.
/// </summary>
public sealed class PickleObject(PickleGlobal type, PickleTuple arguments)
{
    public PickleGlobal Type { get; } = type;

    public PickleTuple Arguments { get; } = arguments;

    public object? State { get; set; }

    public override string ToString()
    {
        var text = new StringBuilder();
        AppendTo(text);
        return text.ToString();
    }

    internal void AppendTo(StringBuilder text)
    {
        text.Append('<').Append(Type.QualifiedName);
        Arguments.AppendTo(text);
        text.Append('>');
    }
}

/// <summary>A Python function this reader implements itself (e.g. torch._utils._rebuild_tensor_v2).</summary>
internal sealed class PickleFunction(string qualifiedName, Func<PickleTuple, object?> invoke)
{
    public string QualifiedName { get; } = qualifiedName;

    public object? Invoke(PickleTuple arguments) => invoke(arguments);

    public override string ToString() => QualifiedName;
}

/// <summary>A Python class that appears only as a marker (a storage type, torch.Tensor in _rebuild_from_type_v2).</summary>
internal sealed record PickleClassMarker(string QualifiedName)
{
    public override string ToString() => QualifiedName;
}
