using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace RAE.Models.Runtime;

public enum DeferredScalarReleaseOutcome
{
    /// <summary>Native scalars are freed a grace period after TorchSharp releases them.</summary>
    Enabled,
    DisabledByEnvironment,
    NotLinuxX64,
    LibraryNotLoaded,
    ExportNotFound,
    /// <summary>The export's code is not the one this fix was written against (another TorchSharp build): left alone.</summary>
    UnknownBuild,
    PatchFailed,
}

public sealed record DeferredScalarReleaseResult(DeferredScalarReleaseOutcome Outcome, string Description)
{
    public bool Enabled => Outcome == DeferredScalarReleaseOutcome.Enabled;
}

/// <summary>
/// Works around a use-after-free in TorchSharp 0.107.0. A <c>TorchSharp.Scalar</c> holds its native <c>c10::Scalar*</c>
/// as a plain <c>IntPtr</c> and frees it in its finalizer; the implicit conversions (<c>t + 1e-6</c>) and TorchSharp's
/// own internal ones (<c>a + b</c> passes an implicit <c>alpha = 1</c>) leave the managed object unreachable as soon as
/// its handle has been read, so a garbage collection during the native call can run the finalizer, which frees the
/// scalar while libtorch still reads it: "Expected false to be true" / "Unknown scalar type", or silently a wrong value
/// when the memory is reused (measured: 13 failures in 11,843 <c>t + t</c> with a thread forcing collections). Upstream
/// pull requests dotnet/TorchSharp#1434 and #1496 (dispose the implicit scalars) are not released.
/// The fix routes TorchSharp's <c>THSTorch_dispose_scalar</c> (every release, from <c>Dispose</c> or a finalizer) to
/// a quarantine that frees each scalar only after <see cref="Grace"/>, far longer than the native call that may still
/// read it. Applied only on Linux x86-64 where the export's code is byte for byte the known build; the environment
/// variable <see cref="OptOutVariable"/>=0 leaves TorchSharp untouched.
/// </summary>
public static unsafe class DeferredScalarRelease
{
    public const string OptOutVariable = "RAE_DEFERRED_SCALAR_RELEASE";
    public const string ExportName = "THSTorch_dispose_scalar";
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);
    private const string TorchSharpLibrary = "libLibTorchSharp.so";
    private const int MaxPending = 1 << 20;
    private const int ScalarSize = 32;

    // THSTorch_dispose_scalar of LibTorchSharp 0.107.0: if (s) { if (tag is symbolic) release its intrusive_ptr;
    // operator delete(s, 32); }. The two rel32 operands (bytes 32..35 and 46..49) depend on where the library was
    // linked and are not compared.
    private static readonly byte[] KnownCode = Convert.FromHexString(
        "4885ff742d8b0783c0fb83f8027719488b4710" +
        "4885c07410534889fb4889c7e8000000004889df5bbe20000000e900000000c3");
    private static readonly Range[] RelocatedOperands = [32..36, 46..50];

    private static readonly Lock Gate = new();
    private static readonly Lock DrainGate = new();
    private static readonly ConcurrentQueue<(IntPtr Scalar, long Timestamp)> Pending = new();
    private static readonly long GraceTicks = (long)(Grace.TotalSeconds * Stopwatch.Frequency);
    private static delegate* unmanaged<IntPtr, nuint, void> operatorDelete;
    private static DeferredScalarReleaseResult? applied;
    private static long released, freed, symbolicLeft;

    /// <summary>Scalars released by TorchSharp since the fix was applied, those freed so far, and symbolic ones left unfreed.</summary>
    public static (long Released, long Freed, long SymbolicLeft, int Pending) Counts =>
        (Interlocked.Read(ref released), Interlocked.Read(ref freed), Interlocked.Read(ref symbolicLeft), Pending.Count);

    /// <summary>Applies the fix once per process (later calls return the first result). TorchSharp must be initialised.</summary>
    public static DeferredScalarReleaseResult Apply()
    {
        lock (Gate)
        {
            return applied ??= Patch();
        }
    }

    private static DeferredScalarReleaseResult Patch()
    {
        const string left = "TorchSharp scalars freed at once (its finalizer race stays)";
        if (Environment.GetEnvironmentVariable(OptOutVariable) is "0")
            return new(DeferredScalarReleaseOutcome.DisabledByEnvironment, $"{left}: {OptOutVariable}=0");
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return new(DeferredScalarReleaseOutcome.NotLinuxX64, $"{left}: not Linux x86-64");
        var path = NativeCode.LoadedLibraryPath(TorchSharpLibrary);
        if (path is null)
            return new(DeferredScalarReleaseOutcome.LibraryNotLoaded, $"{left}: {TorchSharpLibrary} is not loaded in this process");
        if (!NativeLibrary.TryGetExport(NativeLibrary.Load(path), ExportName, out var function))
            return new(DeferredScalarReleaseOutcome.ExportNotFound, $"{left}: {path} does not export {ExportName}");
        if (!IsKnownCode(new ReadOnlySpan<byte>((void*)function, KnownCode.Length)))
            return new(DeferredScalarReleaseOutcome.UnknownBuild, $"{left}: {ExportName} in {path} is not the TorchSharp 0.107.0 code this fix knows");
        if (!NativeLibrary.TryLoad("libstdc++.so.6", out var libstdcxx) || !NativeLibrary.TryGetExport(libstdcxx, "_ZdlPvm", out var delete))
            return new(DeferredScalarReleaseOutcome.ExportNotFound, $"{left}: libstdc++.so.6 operator delete(void*, size_t) not found");
        operatorDelete = (delegate* unmanaged<IntPtr, nuint, void>)delete;

        // movabs rax, &Release; jmp rax
        Span<byte> jump = stackalloc byte[12];
        jump[0] = 0x48;
        jump[1] = 0xB8;
        BitConverter.TryWriteBytes(jump[2..10], (long)(delegate* unmanaged<IntPtr, void>)&Release);
        jump[10] = 0xFF;
        jump[11] = 0xE0;
        var error = NativeCode.Overwrite(function, jump);
        if (error is not null)
            return new(DeferredScalarReleaseOutcome.PatchFailed, $"{left}: patching {ExportName} failed ({error})");
        return new(DeferredScalarReleaseOutcome.Enabled,
            $"TorchSharp scalar release deferred: {ExportName} in {path} now frees each native scalar {Grace.TotalSeconds:0} s after its release, " +
            $"so a finalizer can no longer free one that libtorch is reading ({OptOutVariable}=0 turns this off)");
    }

    private static bool IsKnownCode(ReadOnlySpan<byte> code)
    {
        Span<byte> masked = stackalloc byte[code.Length];
        code.CopyTo(masked);
        foreach (var operand in RelocatedOperands) masked[operand].Clear();
        return masked.SequenceEqual(KnownCode);
    }

    [UnmanagedCallersOnly]
    private static void Release(IntPtr scalar)
    {
        if (scalar == IntPtr.Zero) return;
        Interlocked.Increment(ref released);
        var now = Stopwatch.GetTimestamp();
        Pending.Enqueue((scalar, now));
        if (!DrainGate.TryEnter()) return;
        try
        {
            while (Pending.TryPeek(out var oldest) && (now - oldest.Timestamp > GraceTicks || Pending.Count > MaxPending)
                   && Pending.TryDequeue(out oldest))
                Free(oldest.Scalar);
        }
        finally
        {
            DrainGate.Exit();
        }
    }

    private static void Free(IntPtr scalar)
    {
        // c10::Scalar's tag comes first; 5..7 are the symbolic kinds (SymFloat, SymInt, SymBool) that own a node this
        // fix cannot release. TorchSharp never creates them, so they are counted and left rather than freed wrongly.
        var tag = *(int*)scalar;
        if (tag is >= 5 and <= 7)
        {
            Interlocked.Increment(ref symbolicLeft);
            return;
        }
        operatorDelete(scalar, ScalarSize);
        Interlocked.Increment(ref freed);
    }
}
