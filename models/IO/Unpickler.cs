using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace RAE.Models.IO;

/// <summary>Supplies what a pickle cannot hold itself: Python globals and persistent objects (tensor storages).</summary>
internal interface IPickleResolver
{
    /// <summary>Returns a <see cref="PickleFunction"/>, a <see cref="PickleClassMarker"/> or a <see cref="PickleGlobal"/>; throws for a refused global.</summary>
    object ResolveGlobal(string module, string name);

    object? PersistentLoad(object? persistentId);
}

/// <summary>
/// A data-only pickle reader (protocols 0-5 minus the opcodes PyTorch never writes). It never runs pickled code:
/// globals go through the resolver, which knows a fixed list of safe functions.
/// </summary>
internal sealed class Unpickler
{
    private readonly byte[] _data;
    private readonly string _source;
    private readonly IPickleResolver _resolver;
    private readonly ReaderLimits _limits;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _position;

    public Unpickler(byte[] data, string source, IPickleResolver resolver, ReaderLimits? limits = null)
    {
        _data = data;
        _source = source;
        _resolver = resolver;
        _limits = limits ?? ReaderLimits.Default;
    }

    /// <summary>Reads the pickle and checks that the result nests no deeper than the limit, holds no reference cycle and is not a tree of shared containers too large to walk.</summary>
    public object? Load()
    {
        var root = Run();
        PickleNesting.Check(root, _source, _limits);
        return root;
    }

    private object? Run()
    {
        while (true)
        {
            var opcodePosition = _position;
            var opcode = ReadByte();
            try
            {
                if (opcode == '.') return _stack.Count == 1 && _marks.Count == 0 ? _stack[0] : Fail("STOP with a malformed stack");
                Execute(opcode);
            }
            catch (CheckpointFormatException)
            {
                throw;
            }
            catch (Exception error) when (error is InvalidCastException or ArgumentException or InvalidOperationException or KeyNotFoundException
                or IndexOutOfRangeException or FormatException or OverflowException)
            {
                throw new CheckpointFormatException(_source, $"malformed pickle at byte {opcodePosition} (opcode 0x{opcode:x2}): {error.Message}", error);
            }
        }
    }

    private void Execute(byte opcode)
    {
        switch (opcode)
        {
            case 0x80: ReadByte(); break; // PROTO
            case 0x95: ReadBytes(8); break; // FRAME: framing is only a read-ahead hint
            case (byte)'(': _marks.Push(_stack.Count); break; // MARK
            case (byte)'0': Pop(); break; // POP
            case (byte)'1': PopMark(); break; // POP_MARK
            case (byte)'2': Push(Peek()); break; // DUP
            case (byte)'N': Push(null); break;
            case 0x88: Push(true); break; // NEWTRUE
            case 0x89: Push(false); break; // NEWFALSE
            case (byte)'K': Push((long)ReadByte()); break; // BININT1
            case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2))); break; // BININT2
            case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))); break; // BININT
            case 0x8a: Push(DecodeLong(ReadBytes(ReadByte()))); break; // LONG1
            case 0x8b: Push(DecodeLong(ReadBytes(ReadLength(BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4)))))); break; // LONG4
            case (byte)'I': Push(ParseTextInt(ReadIntegerLine())); break; // INT
            case (byte)'L': Push(ParseTextLong(ReadIntegerLine())); break; // LONG
            case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break; // BINFLOAT
            case (byte)'F': Push(double.Parse(ReadLine(), CultureInfo.InvariantCulture)); break; // FLOAT
            case (byte)'X': Push(ReadUtf8(ReadLength(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))))); break; // BINUNICODE
            case 0x8c: Push(ReadUtf8(ReadByte())); break; // SHORT_BINUNICODE
            case 0x8d: Push(ReadUtf8(ReadLength(BinaryPrimitives.ReadInt64LittleEndian(ReadBytes(8))))); break; // BINUNICODE8
            case (byte)'T': Push(ReadLatin1(ReadLength(BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))))); break; // BINSTRING
            case (byte)'U': Push(ReadLatin1(ReadByte())); break; // SHORT_BINSTRING
            case (byte)'B': Push(ReadBytes(ReadLength(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))).ToArray()); break; // BINBYTES
            case (byte)'C': Push(ReadBytes(ReadByte()).ToArray()); break; // SHORT_BINBYTES
            case 0x8e: Push(ReadBytes(ReadLength(BinaryPrimitives.ReadInt64LittleEndian(ReadBytes(8)))).ToArray()); break; // BINBYTES8
            case 0x96: Push(ReadBytes(ReadLength(BinaryPrimitives.ReadInt64LittleEndian(ReadBytes(8)))).ToArray()); break; // BYTEARRAY8
            case (byte)'}': Push(new PickleDict()); break; // EMPTY_DICT
            case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
            case (byte)')': PushTuple([]); break; // EMPTY_TUPLE
            case 0x8f: Push(new HashSet<object?>()); break; // EMPTY_SET
            case (byte)'d': Push(BuildDict(PopMark())); break; // DICT
            case (byte)'l': Push(PopMark()); break; // LIST
            case (byte)'t': PushTuple(PopMark()); break; // TUPLE
            case 0x85: PushTuple([Pop()]); break; // TUPLE1
            case 0x86: { var b = Pop(); var a = Pop(); PushTuple([a, b]); break; } // TUPLE2
            case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); PushTuple([a, b, c]); break; } // TUPLE3
            case 0x91: Push(new HashSet<object?>(CheckKeys(PopMark()))); break; // FROZENSET
            case (byte)'a': { var item = Pop(); AsList(Peek()).Add(item); break; } // APPEND
            case (byte)'e': { var items = PopMark(); AsList(Peek()).AddRange(items); break; } // APPENDS
            case 0x90: { var items = PopMark(); AsSet(Peek()).UnionWith(CheckKeys(items)); break; } // ADDITEMS
            case (byte)'s': { var value = Pop(); var key = Pop(); SetItem(Peek(), key, value); break; } // SETITEM
            case (byte)'u': SetItems(); break; // SETITEMS
            case (byte)'p': _memo[long.Parse(ReadLine(), CultureInfo.InvariantCulture)] = Peek(); break; // PUT
            case (byte)'q': _memo[ReadByte()] = Peek(); break; // BINPUT
            case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))] = Peek(); break; // LONG_BINPUT
            case 0x94: _memo[_memo.Count] = Peek(); break; // MEMOIZE
            case (byte)'g': Push(MemoGet(long.Parse(ReadLine(), CultureInfo.InvariantCulture))); break; // GET
            case (byte)'h': Push(MemoGet(ReadByte())); break; // BINGET
            case (byte)'j': Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))); break; // LONG_BINGET
            case (byte)'c': { var module = ReadLine(); var name = ReadLine(); Push(_resolver.ResolveGlobal(module, name)); break; } // GLOBAL
            case 0x93: { var name = AsString(Pop(), "STACK_GLOBAL name"); var module = AsString(Pop(), "STACK_GLOBAL module"); Push(_resolver.ResolveGlobal(module, name)); break; }
            case (byte)'R': { var args = AsTuple(Pop(), "REDUCE arguments"); var callable = Pop(); Push(Call(callable, args)); break; } // REDUCE
            case 0x81: { var args = AsTuple(Pop(), "NEWOBJ arguments"); var type = Pop(); Push(Call(type, args)); break; } // NEWOBJ
            case 0x92: NewObjectWithKeywords(); break; // NEWOBJ_EX
            case (byte)'b': { var state = Pop(); Build(Peek(), state); break; } // BUILD
            case (byte)'Q': Push(_resolver.PersistentLoad(Pop())); break; // BINPERSID
            case (byte)'P': Push(_resolver.PersistentLoad(ReadLine())); break; // PERSID
            default:
                Fail($"unsupported pickle opcode 0x{opcode:x2} ('{(char)opcode}') at byte {_position - 1}");
                break;
        }
    }

    private object? Call(object? callable, PickleTuple args) => callable switch
    {
        PickleFunction function => function.Invoke(args),
        PickleGlobal unknown => new PickleObject(unknown, args),
        _ => Fail($"cannot call {Describe(callable)}: only known functions may be called"),
    };

    private void NewObjectWithKeywords()
    {
        var keywords = Pop();
        var args = AsTuple(Pop(), "NEWOBJ_EX arguments");
        var type = Pop();
        if (keywords is PickleDict { Count: > 0 }) Fail($"NEWOBJ_EX with keyword arguments for {Describe(type)} is not supported");
        Push(Call(type, args));
    }

    private void Build(object? target, object? state)
    {
        switch (target)
        {
            case PickleObject unknown:
                unknown.State = state;
                break;
            case PickleDict dictionary:
                // Python's default __setstate__: a dict updates __dict__; (dict, slots) sets both.
                var instanceState = state is PickleTuple { Count: 2 } pair ? pair[0] : state;
                if (instanceState is PickleDict attributes)
                    foreach (var (key, value) in attributes) dictionary.Attributes[AsString(key, "attribute name")] = value;
                else if (instanceState is not null) Fail($"BUILD of a {dictionary.PythonType} with state {Describe(instanceState)}");
                break;
            default:
                Fail($"BUILD (setting object state) on {Describe(target)} is not supported");
                break;
        }
    }

    private void SetItems()
    {
        var items = PopMark();
        if (items.Count % 2 != 0) Fail("SETITEMS with an odd number of stack items");
        var target = Peek();
        for (var i = 0; i < items.Count; i += 2) SetItem(target, items[i], items[i + 1]);
    }

    private void SetItem(object? target, object? key, object? value)
    {
        if (target is not PickleDict dictionary) { Fail($"SETITEM on {Describe(target)}"); return; }
        if (key is null) Fail("a dictionary key is None, which this reader does not support");
        CheckKey(key);
        dictionary[key!] = value;
    }

    private PickleDict BuildDict(List<object?> items)
    {
        var dictionary = new PickleDict();
        if (items.Count % 2 != 0) Fail("DICT with an odd number of stack items");
        for (var i = 0; i < items.Count; i += 2) SetItem(dictionary, items[i], items[i + 1]);
        return dictionary;
    }

    private object? MemoGet(long index) =>
        _memo.TryGetValue(index, out var value) ? value : Fail($"memo entry {index} is read before it was written");

    private void Push(object? value) => _stack.Add(value);

    // Tuples are immutable, so their height is known when they are built: a deep chain (a million TUPLE1) stops here,
    // before anything hashes, compares or prints it recursively.
    private void PushTuple(List<object?> items)
    {
        var tuple = items.Count == 0 ? PickleTuple.Empty : new PickleTuple(items);
        if (tuple.Height > _limits.MaxPickleNestingDepth)
            throw CheckpointFormatException.LimitExceeded(_source, nameof(ReaderLimits.MaxPickleNestingDepth), _limits.MaxPickleNestingDepth,
                $"tuples nest deeper than the limit at byte {_position}");
        _stack.Add(tuple);
    }

    // Hashing and comparing a tuple key costs its element count, so large keys would make each dict insertion expensive.
    private void CheckKey(object? key)
    {
        if (key is PickleTuple tuple && tuple.ElementCount > _limits.MaxPickleKeyElements)
            throw CheckpointFormatException.LimitExceeded(_source, nameof(ReaderLimits.MaxPickleKeyElements), _limits.MaxPickleKeyElements,
                $"a tuple used as a dict key or set item holds {tuple.ElementCount} elements");
    }

    private List<object?> CheckKeys(List<object?> keys)
    {
        foreach (var key in keys) CheckKey(key);
        return keys;
    }

    private object? Peek() => _stack.Count > (_marks.Count > 0 ? _marks.Peek() : 0) ? _stack[^1] : Fail("stack underflow");

    private object? Pop()
    {
        var value = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) Fail("an opcode needs a MARK but none is set");
        var mark = _marks.Pop();
        var items = _stack.GetRange(mark, _stack.Count - mark);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private byte ReadByte() => _position < _data.Length ? _data[_position++] : throw Truncated();

    private ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0 || count > _data.Length - _position) throw Truncated();
        var span = _data.AsSpan(_position, count);
        _position += count;
        return span;
    }

    private int ReadLength(long length) =>
        length >= 0 && length <= _data.Length - _position ? (int)length : throw Truncated();

    private string ReadLine()
    {
        var end = Array.IndexOf(_data, (byte)'\n', _position);
        if (end < 0) throw Truncated();
        var line = Encoding.UTF8.GetString(_data, _position, end - _position);
        _position = end + 1;
        return line;
    }

    // Decimal parsing is superlinear in the digit count; Python refuses more than 4300 digits for the same reason.
    private string ReadIntegerLine()
    {
        var line = ReadLine();
        var digits = line.Count(char.IsAsciiDigit);
        if (digits > _limits.MaxPickleIntegerDigits)
            throw CheckpointFormatException.LimitExceeded(_source, nameof(ReaderLimits.MaxPickleIntegerDigits), _limits.MaxPickleIntegerDigits,
                $"a text integer at byte {_position} has {digits} digits");
        return line;
    }

    private string ReadUtf8(int count) => Encoding.UTF8.GetString(ReadBytes(count));

    private string ReadLatin1(int count) => Encoding.Latin1.GetString(ReadBytes(count));

    private CheckpointFormatException Truncated() =>
        new(_source, $"the pickle ends unexpectedly at byte {_position} of {_data.Length} (truncated or corrupted file)");

    private static object DecodeLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0) return 0L;
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;
    }

    private static object ParseTextInt(string text) => text switch
    {
        "00" => false,
        "01" => true,
        _ => long.Parse(text, CultureInfo.InvariantCulture),
    };

    private static object ParseTextLong(string text)
    {
        var value = BigInteger.Parse(text.TrimEnd('L'), CultureInfo.InvariantCulture);
        return value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;
    }

    private List<object?> AsList(object? value) => value as List<object?> ?? throw Error($"APPEND to {Describe(value)}");

    private HashSet<object?> AsSet(object? value) => value as HashSet<object?> ?? throw Error($"ADDITEMS to {Describe(value)}");

    private PickleTuple AsTuple(object? value, string what) => value as PickleTuple ?? throw Error($"{what} are {Describe(value)}, not a tuple");

    private string AsString(object? value, string what) => value as string ?? throw Error($"{what} is {Describe(value)}, not a string");

    internal static string Describe(object? value) => value switch
    {
        null => "None",
        string text => $"'{text}'",
        PickleFunction or PickleClassMarker or PickleGlobal => value.ToString()!,
        _ => value.GetType().Name,
    };

    private CheckpointFormatException Error(string problem) => new(_source, problem);

    private object? Fail(string problem) => throw Error(problem);
}
