using System.Buffers.Binary;

namespace RAE.Models.Tests.Fuzzing;

/// <summary>One fuzz input and how it was made (printed when a case escapes the reader's typed errors).</summary>
public sealed record FuzzInput(byte[] Bytes, string How);

/// <summary>
/// Seeded mutations of valid files: random bytes (bare and behind the format's signature), truncations, bit flips,
/// byte replacements, interesting integers (0, -1, powers of two, type extremes) written over the bytes, edits of
/// length and offset fields (integers whose value could be a size or position within the file), splices of ranges
/// from the same or another valid file, deletions and duplications, and stacks of two to four of these.
/// </summary>
public sealed class ByteMutator(IReadOnlyList<byte[]> seeds, int seed)
{
    private const int MaxRandomLength = 4096;

    private static readonly long[] InterestingValues =
    [
        0, 1, 2, 7, 8, 16, 64, 127, 128, 255, 256, 4095, 4096, 32767, 32768, 65535, 65536, 1 << 20,
        int.MaxValue, int.MinValue, uint.MaxValue, 1L << 32, 1L << 40, long.MaxValue, long.MinValue, -1, -2,
    ];

    private readonly Random _random = new(seed);

    public FuzzInput Next()
    {
        var original = seeds[_random.Next(seeds.Count)];
        var roll = _random.Next(100);
        if (roll < 6) return RandomBytes();
        if (roll < 12) return SignatureThenRandom(original);
        if (roll < 22) return Stack(original);
        return Single(original);
    }

    private FuzzInput Single(byte[] original) => _random.Next(8) switch
    {
        0 => Truncate(original),
        1 => FlipBits(original),
        2 => ReplaceBytes(original),
        3 => WriteInterestingInteger(original),
        4 or 5 => EditLengthField(original),
        6 => Splice(original),
        _ => DeleteOrDuplicate(original),
    };

    private FuzzInput Stack(byte[] original)
    {
        var steps = _random.Next(2, 5);
        var current = new FuzzInput(original, "");
        var how = new List<string>();
        for (var step = 0; step < steps && current.Bytes.Length > 0; step++)
        {
            current = Single(current.Bytes);
            how.Add(current.How);
        }
        return current with { How = string.Join(" then ", how) };
    }

    private FuzzInput RandomBytes()
    {
        var bytes = new byte[_random.Next(MaxRandomLength)];
        _random.NextBytes(bytes);
        return new(bytes, $"{bytes.Length} random bytes");
    }

    private FuzzInput SignatureThenRandom(byte[] original)
    {
        var keep = Math.Min(original.Length, _random.Next(4, 17));
        var bytes = new byte[keep + _random.Next(MaxRandomLength)];
        _random.NextBytes(bytes);
        original.AsSpan(0, keep).CopyTo(bytes);
        return new(bytes, $"the first {keep} bytes then {bytes.Length - keep} random bytes");
    }

    private FuzzInput Truncate(byte[] original)
    {
        var length = _random.Next(original.Length);
        return new(original[..length], $"truncated to {length}");
    }

    private FuzzInput FlipBits(byte[] original)
    {
        var bytes = (byte[])original.Clone();
        var flips = _random.Next(1, 9);
        var positions = new List<string>();
        for (var i = 0; i < flips && bytes.Length > 0; i++)
        {
            var position = _random.Next(bytes.Length);
            var bit = _random.Next(8);
            bytes[position] ^= (byte)(1 << bit);
            positions.Add($"{position}.{bit}");
        }
        return new(bytes, $"bits flipped at {string.Join(",", positions)}");
    }

    private FuzzInput ReplaceBytes(byte[] original)
    {
        var bytes = (byte[])original.Clone();
        var count = _random.Next(1, 9);
        var positions = new List<int>();
        for (var i = 0; i < count && bytes.Length > 0; i++)
        {
            var position = _random.Next(bytes.Length);
            bytes[position] = (byte)_random.Next(256);
            positions.Add(position);
        }
        return new(bytes, $"bytes replaced at {string.Join(",", positions)}");
    }

    private FuzzInput WriteInterestingInteger(byte[] original)
    {
        var value = InterestingValues[_random.Next(InterestingValues.Length)];
        return WriteInteger(original, _random.Next(Math.Max(1, original.Length)), value, $"interesting value {value}");
    }

    /// <summary>
    /// Finds an integer field that reads as a plausible size or offset (1 to the file's length, as 2-, 4- or 8-byte,
    /// little- or big-endian) and moves it by one, doubles it, or sets it far past the end or to an extreme.
    /// </summary>
    private FuzzInput EditLengthField(byte[] original)
    {
        for (var attempt = 0; attempt < 64 && original.Length >= 2; attempt++)
        {
            var width = new[] { 2, 4, 8 }[_random.Next(3)];
            if (original.Length < width) continue;
            var position = _random.Next(original.Length - width + 1);
            var bigEndian = _random.Next(2) == 0;
            var value = ReadInteger(original.AsSpan(position, width), bigEndian);
            if (value < 1 || value > original.Length) continue;
            var edited = _random.Next(8) switch
            {
                0 => value - 1,
                1 => value + 1,
                2 => value * 2,
                3 => value + original.Length,
                4 => value * 1000,
                5 => 0,
                6 => width == 2 ? ushort.MaxValue : width == 4 ? int.MaxValue : long.MaxValue,
                _ => width == 2 ? 0x8000 : 1L << (width * 8 - 1),
            };
            var bytes = (byte[])original.Clone();
            WriteInteger(bytes.AsSpan(position, width), edited, bigEndian);
            return new(bytes, $"{width}-byte {(bigEndian ? "big" : "little")}-endian length {value} at {position} set to {edited}");
        }
        return ReplaceBytes(original);
    }

    private FuzzInput Splice(byte[] original)
    {
        var donor = seeds[_random.Next(seeds.Count)];
        if (donor.Length == 0 || original.Length == 0) return Truncate(original);
        var from = _random.Next(donor.Length);
        var length = _random.Next(1, Math.Min(donor.Length - from, 256) + 1);
        var at = _random.Next(original.Length + 1);
        var overwrite = _random.Next(2) == 0;
        var tail = overwrite ? Math.Min(original.Length, at + length) : at;
        byte[] bytes = [.. original.AsSpan(0, at), .. donor.AsSpan(from, length), .. original.AsSpan(tail)];
        return new(bytes, $"{length} bytes from {(ReferenceEquals(donor, original) ? "itself" : "another file")} at {from} {(overwrite ? "written over" : "inserted at")} {at}");
    }

    private FuzzInput DeleteOrDuplicate(byte[] original)
    {
        if (original.Length == 0) return RandomBytes();
        var from = _random.Next(original.Length);
        var length = _random.Next(1, Math.Min(original.Length - from, 512) + 1);
        if (_random.Next(2) == 0)
            return new([.. original.AsSpan(0, from), .. original.AsSpan(from + length)], $"{length} bytes deleted at {from}");
        return new([.. original.AsSpan(0, from + length), .. original.AsSpan(from, length), .. original.AsSpan(from + length)],
            $"{length} bytes at {from} duplicated");
    }

    private FuzzInput WriteInteger(byte[] original, int position, long value, string what)
    {
        var width = new[] { 1, 2, 4, 8 }[_random.Next(4)];
        var bigEndian = _random.Next(2) == 0;
        var bytes = (byte[])original.Clone();
        width = Math.Min(width, bytes.Length - Math.Min(position, bytes.Length));
        if (width <= 0) return new(bytes, "unchanged");
        WriteInteger(bytes.AsSpan(position, width), value, bigEndian);
        return new(bytes, $"{what} written as {width} {(bigEndian ? "big" : "little")}-endian bytes at {position}");
    }

    private static long ReadInteger(ReadOnlySpan<byte> field, bool bigEndian) => (field.Length, bigEndian) switch
    {
        (2, true) => BinaryPrimitives.ReadUInt16BigEndian(field),
        (2, false) => BinaryPrimitives.ReadUInt16LittleEndian(field),
        (4, true) => BinaryPrimitives.ReadUInt32BigEndian(field),
        (4, false) => BinaryPrimitives.ReadUInt32LittleEndian(field),
        (_, true) => BinaryPrimitives.ReadInt64BigEndian(field),
        _ => BinaryPrimitives.ReadInt64LittleEndian(field),
    };

    private static void WriteInteger(Span<byte> field, long value, bool bigEndian)
    {
        Span<byte> full = stackalloc byte[8];
        if (bigEndian) BinaryPrimitives.WriteInt64BigEndian(full, value);
        else BinaryPrimitives.WriteInt64LittleEndian(full, value);
        // The low-order bytes of the value, in the field's byte order.
        (bigEndian ? full[(8 - field.Length)..] : full[..field.Length]).CopyTo(field);
    }
}
