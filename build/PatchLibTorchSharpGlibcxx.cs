using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

// Marks the GLIBCXX_3.4.32 entry of libLibTorchSharp.so's .gnu.version_r as weak (VER_FLG_WEAK = 0x2)
// when the host libstdc++ does not define that version. See TorchSharpNative.targets for the why.
public class RaePatchLibTorchSharpGlibcxx : Task
{
    private const string LibraryName = "libLibTorchSharp.so";
    private const string NeededVersion = "GLIBCXX_3.4.32";
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    [Required]
    public string[] Directories { get; set; } = Array.Empty<string>();

    public override bool Execute()
    {
        if (HostLibstdcxxDefines(NeededVersion))
        {
            Log.LogMessage(MessageImportance.Low, "RAE: host libstdc++ defines " + NeededVersion + "; no patch needed.");
            return true;
        }
        foreach (var directory in Directories)
        {
            foreach (var candidate in new[] { Path.Combine(directory, LibraryName), Path.Combine(directory, "runtimes", "linux-x64", "native", LibraryName) })
            {
                if (!File.Exists(candidate)) continue;
                try
                {
                    PatchFile(candidate);
                }
                catch (Exception ex)
                {
                    Log.LogError("RAE: could not patch " + candidate + " for " + NeededVersion + ": " + ex.Message);
                    return false;
                }
            }
        }
        return !Log.HasLoggedErrors;
    }

    private static bool HostLibstdcxxDefines(string version)
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        var needle = Encoding.ASCII.GetBytes(version + "\0");
        foreach (var path in candidates)
        {
            if (!File.Exists(path)) continue;
            var bytes = File.ReadAllBytes(path);
            return IndexOf(bytes, needle) >= 0;
        }
        return false;
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (var i = 0; i <= haystack.Length - needle.Length; i++)
        {
            var match = true;
            for (var j = 0; j < needle.Length && match; j++) match = haystack[i + j] == needle[j];
            if (match) return i;
        }
        return -1;
    }

    private void PatchFile(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (bytes[4] != 2 || bytes[5] != 1) throw new InvalidDataException("only 64-bit little-endian ELF is supported");

        var sectionHeaderOffset = (long)BitConverter.ToUInt64(bytes, 0x28);
        int sectionHeaderSize = BitConverter.ToUInt16(bytes, 0x3A);
        int sectionCount = BitConverter.ToUInt16(bytes, 0x3C);
        for (var s = 0; s < sectionCount; s++)
        {
            var header = (int)(sectionHeaderOffset + (long)s * sectionHeaderSize);
            if (BitConverter.ToUInt32(bytes, header + 4) != ShtGnuVerneed) continue;
            var verneedOffset = (int)BitConverter.ToUInt64(bytes, header + 0x18);
            var stringSection = (int)BitConverter.ToUInt32(bytes, header + 0x28);
            var verneedCount = (int)BitConverter.ToUInt32(bytes, header + 0x2C);
            var stringHeader = (int)(sectionHeaderOffset + (long)stringSection * sectionHeaderSize);
            var stringsOffset = (int)BitConverter.ToUInt64(bytes, stringHeader + 0x18);

            var need = verneedOffset;
            for (var n = 0; n < verneedCount; n++)
            {
                int auxCount = BitConverter.ToUInt16(bytes, need + 2);
                var aux = need + (int)BitConverter.ToUInt32(bytes, need + 8);
                for (var a = 0; a < auxCount; a++)
                {
                    var name = ReadCString(bytes, stringsOffset + (int)BitConverter.ToUInt32(bytes, aux + 8));
                    if (name == NeededVersion)
                    {
                        var flags = BitConverter.ToUInt16(bytes, aux + 4);
                        if ((flags & VerFlagWeak) != 0)
                        {
                            Log.LogMessage(MessageImportance.Low, "RAE: " + path + " already has " + NeededVersion + " marked weak.");
                            return;
                        }
                        var patched = (ushort)(flags | VerFlagWeak);
                        bytes[aux + 4] = (byte)(patched & 0xff);
                        bytes[aux + 5] = (byte)(patched >> 8);
                        WriteKeepingTimestamp(path, bytes);
                        Log.LogMessage(MessageImportance.High,
                            "RAE: host libstdc++ lacks " + NeededVersion + "; marked that requirement weak in " + path);
                        return;
                    }
                    aux += (int)BitConverter.ToUInt32(bytes, aux + 12);
                }
                need += (int)BitConverter.ToUInt32(bytes, need + 12);
            }
        }
        Log.LogMessage(MessageImportance.Low, "RAE: " + path + " does not require " + NeededVersion + "; nothing to patch.");
    }

    private static string ReadCString(byte[] bytes, int offset)
    {
        var end = offset;
        while (end < bytes.Length && bytes[end] != 0) end++;
        return Encoding.ASCII.GetString(bytes, offset, end - offset);
    }

    // Write through a temporary file and rename, so a hard link into the NuGet cache is never modified, and keep the
    // source's timestamp so MSBuild's incremental copy does not overwrite the patched file on every build.
    private static void WriteKeepingTimestamp(string path, byte[] bytes)
    {
        var timestamp = File.GetLastWriteTimeUtc(path);
        var temporary = path + ".rae-patch.tmp";
        File.WriteAllBytes(temporary, bytes);
        File.SetLastWriteTimeUtc(temporary, timestamp);
        File.Delete(path);
        File.Move(temporary, path);
    }
}
