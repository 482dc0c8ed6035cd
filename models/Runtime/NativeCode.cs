using System.Runtime.InteropServices;

namespace RAE.Models.Runtime;

/// <summary>Finding loaded native libraries and overwriting the first bytes of one of their exported functions.</summary>
internal static class NativeCode
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;

    /// <summary>The full path of an already loaded shared library, read from /proc/self/maps.</summary>
    public static string? LoadedLibraryPath(string fileName)
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            var slash = line.IndexOf('/');
            if (slash < 0) continue;
            var path = line[slash..];
            if (Path.GetFileName(path) == fileName) return path;
        }
        return null;
    }

    /// <summary>Copies <paramref name="code"/> over the code at <paramref name="address"/>; returns why it failed, or null.</summary>
    public static unsafe string? Overwrite(IntPtr address, ReadOnlySpan<byte> code)
    {
        var pageSize = (ulong)Environment.SystemPageSize;
        var start = (ulong)address & ~(pageSize - 1);
        var length = (nuint)((ulong)address + (ulong)code.Length - start);
        // Writable and executable together so that no other thread faults on code in the same page; where the kernel
        // refuses W+X, the page is writable for the copy only.
        if (mprotect((IntPtr)start, length, ProtRead | ProtWrite | ProtExec) != 0
            && mprotect((IntPtr)start, length, ProtRead | ProtWrite) != 0)
            return $"mprotect failed, errno {Marshal.GetLastPInvokeError()}";
        code.CopyTo(new Span<byte>((void*)address, code.Length));
        if (mprotect((IntPtr)start, length, ProtRead | ProtExec) != 0)
            return $"restoring protection failed, errno {Marshal.GetLastPInvokeError()}";
        return null;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int mprotect(IntPtr address, nuint length, int protection);
}
