namespace RAE.Models.IO;

/// <summary>CRC-32 (IEEE 802.3, as zip uses), table-driven slicing-by-8, plus zlib's crc32_combine.</summary>
public static class Crc32
{
    private const uint Polynomial = 0xEDB88320u;
    private static readonly uint[] Table = BuildTable();
    private static readonly uint[] PowersOfX = BuildPowers();

    /// <summary>Continues a CRC over more bytes: start with 0, feed every chunk in order.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var c = ~crc;
        while (data.Length >= 8)
        {
            var low = c ^ (uint)(data[0] | data[1] << 8 | data[2] << 16 | data[3] << 24);
            c = Table[7 * 256 + (low & 0xFF)] ^ Table[6 * 256 + ((low >> 8) & 0xFF)]
                ^ Table[5 * 256 + ((low >> 16) & 0xFF)] ^ Table[4 * 256 + (low >> 24)]
                ^ Table[3 * 256 + data[4]] ^ Table[2 * 256 + data[5]] ^ Table[256 + data[6]] ^ Table[data[7]];
            data = data[8..];
        }
        foreach (var b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>CRC of A followed by B, from CRC(A), CRC(B) and the length of B (zlib's crc32_combine).</summary>
    public static uint Combine(uint crcFirst, uint crcSecond, long secondLength) =>
        MultiplyModP(PowerOfXModP(secondLength, 3), crcFirst) ^ crcSecond;

    private static uint MultiplyModP(uint a, uint b)
    {
        var m = 1u << 31;
        var product = 0u;
        while (true)
        {
            if ((a & m) != 0)
            {
                product ^= b;
                if ((a & (m - 1)) == 0) break;
            }
            m >>= 1;
            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }
        return product;
    }

    // x^(n * 2^k) modulo the CRC polynomial.
    private static uint PowerOfXModP(long n, int k)
    {
        var p = 1u << 31;
        while (n != 0)
        {
            if ((n & 1) != 0) p = MultiplyModP(PowersOfX[k & 31], p);
            n >>= 1;
            k++;
        }
        return p;
    }

    private static uint[] BuildPowers()
    {
        var powers = new uint[32];
        var p = 1u << 30; // x^1
        powers[0] = p;
        for (var n = 1; n < 32; n++) powers[n] = p = MultiplyModP(p, p);
        return powers;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var bit = 0; bit < 8; bit++) c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            table[i] = c;
        }
        for (var i = 0; i < 256; i++)
            for (var slice = 1; slice < 8; slice++)
                table[slice * 256 + i] = (table[(slice - 1) * 256 + i] >> 8) ^ table[table[(slice - 1) * 256 + i] & 0xFF];
        return table;
    }
}
