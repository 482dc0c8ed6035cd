using System.Runtime.InteropServices;

namespace RAE.Models.Runtime;

public enum NativeMemoryTuningOutcome
{
    /// <summary>glibc keeps freed tensor memory for reuse, and libtorch asks for huge pages on large buffers.</summary>
    Enabled,
    DisabledByEnvironment,
    NotLinux,
    NotGlibc,
    MalloptRefused,
}

public sealed record NativeMemoryTuningResult(NativeMemoryTuningOutcome Outcome, string Description)
{
    public bool Enabled => Outcome == NativeMemoryTuningOutcome.Enabled;
}

/// <summary>
/// libtorch's CPU allocator is plain <c>posix_memalign</c>/<c>free</c>. glibc serves every block above its mmap
/// threshold (at most 32 MB) with a fresh <c>mmap</c> and unmaps it on free, and returns the freed top of the heap to
/// the kernel, so every large activation of every step is first-touched again: one page fault per 4 KiB. On the
/// development VM a fault costs tens of microseconds, so a 90 MB SwiGLU activation cost ~300 ms of faults for ~5 ms of
/// arithmetic, and elementwise ops ran 50x slower than their memory traffic. Tuning, once per process before the first
/// tensor: <c>mallopt(M_MMAP_MAX, 0)</c> (large blocks come from the heap, and are reused after free),
/// <c>mallopt(M_TRIM_THRESHOLD, 2 GiB)</c> (freed heap memory is kept, as a caching allocator does; resident memory
/// stays at the process's peak instead of following it down), and <c>THP_MEM_ALLOC_ENABLE=1</c> in the native
/// environment (libtorch then aligns blocks of 2 MB and more to 2 MB and advises huge pages for them, which cuts the
/// faults of whatever is still mapped fresh by 512x). Only on Linux with glibc; <see cref="OptOutVariable"/>=0 leaves
/// the allocator untouched.
/// </summary>
public static class NativeMemoryTuning
{
    public const string OptOutVariable = "RAE_NATIVE_MEMORY_TUNING";
    public const string TorchHugePagesVariable = "THP_MEM_ALLOC_ENABLE";
    private const int MallocTrimThreshold = -1, MallocMmapMax = -4;
    private const int TrimThresholdBytes = int.MaxValue;
    private static readonly Lock Gate = new();
    private static NativeMemoryTuningResult? applied;

    /// <summary>Applies the tuning once per process (later calls return the first result). Call before the first tensor.</summary>
    public static NativeMemoryTuningResult Apply()
    {
        lock (Gate)
        {
            return applied ??= Tune();
        }
    }

    /// <summary>
    /// Hands the heap's free pages back to the kernel (glibc <c>malloc_trim(0)</c>), for when a large model has been
    /// released (a job's replica left the silo): with the tuning the heap otherwise stays at its peak, and a silo that
    /// trained DiT^DH-S keeps ~6 GB resident while idle. Returns whether glibc released anything; false without the tuning.
    /// </summary>
    public static bool ReturnFreeMemory()
    {
        lock (Gate)
        {
            if (applied is not { Enabled: true }) return false;
        }
        return malloc_trim(0) == 1;
    }

    /// <summary>
    /// After a job's replica is released with <paramref name="managedBytes"/> of managed buffers (a rank's pinned gradient
    /// vector: 786 MB for DiT^DH-S): from 64 MiB on, one full blocking collection, the finalizers it queued (tensor
    /// wrappers that still hold native memory, views of that vector among them) and a second, aggressive collection that
    /// decommits the freed managed memory; then <see cref="ReturnFreeMemory"/>. Once per release, never per step; small
    /// replicas (the tests' hundreds of tiny jobs) skip the collections.
    /// </summary>
    public static bool ReturnReleasedMemory(long managedBytes)
    {
        if (managedBytes < 64L << 20) return ReturnFreeMemory();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        return ReturnFreeMemory();
    }

    /// <summary>Resident memory of this process in bytes (/proc/self/statm), or null off Linux.</summary>
    public static long? ResidentBytes()
    {
        if (!OperatingSystem.IsLinux()) return null;
        var fields = File.ReadAllText("/proc/self/statm").Split(' ');
        return long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
    }

    /// <summary>Minor page faults of the calling thread so far (getrusage RUSAGE_THREAD), or null off Linux.</summary>
    public static long? ThreadMinorFaults()
    {
        if (!OperatingSystem.IsLinux()) return null;
        return getrusage(RusageThread, out var usage) == 0 ? usage.MinorFaults : null;
    }

    private static NativeMemoryTuningResult Tune()
    {
        if (Environment.GetEnvironmentVariable(OptOutVariable) is "0")
            return new(NativeMemoryTuningOutcome.DisabledByEnvironment, $"native allocator left at glibc's defaults: {OptOutVariable}=0");
        if (!OperatingSystem.IsLinux())
            return new(NativeMemoryTuningOutcome.NotLinux, $"native allocator left at its defaults: not Linux ({RuntimeInformation.OSDescription})");
        string glibcVersion;
        try
        {
            glibcVersion = Marshal.PtrToStringAnsi(gnu_get_libc_version()) ?? "?";
        }
        catch (EntryPointNotFoundException)
        {
            return new(NativeMemoryTuningOutcome.NotGlibc, "native allocator left at its defaults: the C library is not glibc");
        }
        if (mallopt(MallocMmapMax, 0) != 1 || mallopt(MallocTrimThreshold, TrimThresholdBytes) != 1)
            return new(NativeMemoryTuningOutcome.MalloptRefused, $"native allocator left at its defaults: glibc {glibcVersion} refused mallopt");
        // libtorch reads this once, from the C environment (Environment.SetEnvironmentVariable does not reach it).
        setenv(TorchHugePagesVariable, "1", overwrite: 0);
        return new(NativeMemoryTuningOutcome.Enabled,
            $"native allocator tuned for tensors: glibc {glibcVersion} keeps freed blocks for reuse (M_MMAP_MAX=0, M_TRIM_THRESHOLD={TrimThresholdBytes}) " +
            $"and libtorch advises huge pages ({TorchHugePagesVariable}={Environment.GetEnvironmentVariable(TorchHugePagesVariable) ?? "1"}), " +
            $"so activations are not page-faulted in again every step ({OptOutVariable}=0 turns this off)");
    }

    private const int RusageThread = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct ResourceUsage
    {
        public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
        public long MaxResident, SharedMemory, UnsharedData, UnsharedStack;
        public long MinorFaults, MajorFaults;
        public long Swaps, BlockInputs, BlockOutputs, MessagesSent, MessagesReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int mallopt(int parameter, int value);

    [DllImport("libc")]
    private static extern IntPtr gnu_get_libc_version();

    [DllImport("libc")]
    private static extern int malloc_trim(nuint pad);

    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);

    [DllImport("libc", SetLastError = true)]
    private static extern int getrusage(int who, out ResourceUsage usage);
}
