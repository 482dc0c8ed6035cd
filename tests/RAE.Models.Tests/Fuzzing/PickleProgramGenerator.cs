using System.Text;

namespace RAE.Models.Tests.Fuzzing;

/// <summary>
/// Random pickle programs: sequences of well-formed opcodes (stack, memo, containers, the globals a checkpoint may
/// name, REDUCE/BUILD/BINPERSID) that end with STOP. Byte mutations of a real pickle mostly break its first opcodes;
/// these reach the stack machine's later states: memo sharing, mismatched marks, calls with wrong arguments.
/// </summary>
public static class PickleProgramGenerator
{
    private static readonly byte[][] Operations =
    [
        [(byte)'('], [(byte)'0'], [(byte)'1'], [(byte)'2'], [(byte)'N'], [0x88], [0x89],
        [(byte)'K', 3], [(byte)'K', 0], [(byte)'M', 0xff, 0xff], [(byte)'J', 0xff, 0xff, 0xff, 0x7f], [0x8a, 1, 0x80], [0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x80],
        [(byte)'G', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], Ascii("I01\n"), Ascii("L123L\n"), Ascii("F1.5\n"),
        [0x8c, 1, (byte)'a'], [0x8c, 7, .. Encoding.ASCII.GetBytes("storage")], [0x8c, 3, (byte)'c', (byte)'p', (byte)'u'], [(byte)'U', 1, (byte)'b'], [(byte)'C', 2, 1, 2],
        [(byte)'}'], [(byte)']'], [(byte)')'], [0x8f], [(byte)'d'], [(byte)'l'], [(byte)'t'], [0x85], [0x86], [0x87], [0x91],
        [(byte)'a'], [(byte)'e'], [0x90], [(byte)'s'], [(byte)'u'], [0x94], [(byte)'b'], [(byte)'R'], [0x81], [0x92], [(byte)'Q'], [0x93],
        Ascii("ccollections\nOrderedDict\n"), Ascii("ctorch._utils\n_rebuild_tensor_v2\n"), Ascii("ctorch._utils\n_rebuild_parameter\n"),
        Ascii("ctorch\nFloatStorage\n"), Ascii("ctorch\nSize\n"), Ascii("ctorch\ndevice\n"), Ascii("c_codecs\nencode\n"),
        Ascii("ctorch._tensor\n_rebuild_from_type_v2\n"), Ascii("cbuiltins\neval\n"),
    ];

    public static FuzzInput Next(Random random)
    {
        var program = new List<byte> { 0x80, 2 };
        var length = random.Next(1, 120);
        var memoSlots = random.Next(1, 8);
        for (var i = 0; i < length; i++)
        {
            switch (random.Next(10))
            {
                case 0: program.AddRange([(byte)'q', (byte)random.Next(memoSlots)]); break; // BINPUT
                case 1: program.AddRange([(byte)'h', (byte)random.Next(memoSlots)]); break; // BINGET
                default: program.AddRange(Operations[random.Next(Operations.Length)]); break;
            }
        }
        program.Add((byte)'.');
        return new FuzzInput([.. program], $"a random pickle program of {length} operations");
    }

    private static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);
}
