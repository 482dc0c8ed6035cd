using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace RAE.Models.Runtime;

public enum MklFastPathOutcome
{
    /// <summary>The export now returns 1: MKL dispatches to the widest kernels the CPU has (AVX-512 or AVX2).</summary>
    Enabled,
    DisabledByEnvironment,
    NotLinuxX64,
    GenuineIntel,
    MissingAvx2OrFma,
    LibraryNotLoaded,
    ExportNotFound,
    PatchFailed,
}

public sealed record MklFastPathResult(MklFastPathOutcome Outcome, string Description)
{
    public bool Enabled => Outcome == MklFastPathOutcome.Enabled;
}

/// <summary>
/// libtorch links MKL statically, and MKL asks its exported <c>mkl_serv_intel_cpu_true</c> whether the CPU is Intel's
/// before it picks a kernel: on any other vendor it answers 0 and MKL runs its generic AVX2 path even where the core has
/// AVX-512. Overwriting that function's first bytes with <c>mov eax,1; ret</c>, before the first BLAS call, makes MKL
/// dispatch on the instruction sets the CPU reports instead. Applied only on Linux x86-64, on a CPU that is not
/// GenuineIntel (Intel already gets the fast path) and has AVX2 and FMA (the least MKL's fast kernels need); the
/// environment variable <see cref="OptOutVariable"/>=0 leaves MKL untouched.
/// </summary>
public static class MklFastPath
{
    public const string OptOutVariable = "RAE_MKL_FAST_PATH";
    public const string ExportName = "mkl_serv_intel_cpu_true";
    public const string CpuDetectExportName = "mkl_serv_cpu_detect";
    private const string TorchCpuLibrary = "libtorch_cpu.so";

    // mov eax, 1; ret
    private static readonly byte[] ReturnOne = [0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3];
    private static readonly Lock Gate = new();
    private static MklFastPathResult? applied;

    /// <summary>The CPU vendor string from CPUID leaf 0 ("GenuineIntel", "AuthenticAMD", ...); null off x86.</summary>
    public static string? CpuVendor()
    {
        if (!X86Base.IsSupported) return null;
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        var bytes = new byte[12];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 4), ebx);
        BitConverter.TryWriteBytes(bytes.AsSpan(4, 4), edx);
        BitConverter.TryWriteBytes(bytes.AsSpan(8, 4), ecx);
        return Encoding.ASCII.GetString(bytes);
    }

    /// <summary>Why the fast path would not be applied on this machine and environment, or null when it would be.</summary>
    public static MklFastPathResult? Ineligibility()
    {
        if (Environment.GetEnvironmentVariable(OptOutVariable) is "0")
            return new(MklFastPathOutcome.DisabledByEnvironment, $"MKL left on its default dispatch: {OptOutVariable}=0");
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return new(MklFastPathOutcome.NotLinuxX64, $"MKL left on its default dispatch: not Linux x86-64 ({RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture})");
        var vendor = CpuVendor();
        if (vendor == "GenuineIntel")
            return new(MklFastPathOutcome.GenuineIntel, "MKL left on its default dispatch: GenuineIntel CPU, MKL already uses its fastest kernels");
        if (!Avx2.IsSupported || !Fma.IsSupported)
            return new(MklFastPathOutcome.MissingAvx2OrFma, $"MKL left on its default dispatch: {vendor} CPU without AVX2 and FMA");
        return null;
    }

    /// <summary>
    /// Applies the patch once per process (later calls return the first result). libtorch_cpu.so must already be loaded
    /// (any TorchSharp tensor operation loads it); call before the first matmul, since MKL caches its dispatch.
    /// </summary>
    public static MklFastPathResult Apply()
    {
        lock (Gate)
        {
            return applied ??= Ineligibility() ?? Patch();
        }
    }

    private static MklFastPathResult Patch()
    {
        var path = NativeCode.LoadedLibraryPath(TorchCpuLibrary);
        if (path is null)
            return new(MklFastPathOutcome.LibraryNotLoaded, $"MKL left on its default dispatch: {TorchCpuLibrary} is not loaded in this process");
        var handle = NativeLibrary.Load(path);
        if (!NativeLibrary.TryGetExport(handle, ExportName, out var function))
            return new(MklFastPathOutcome.ExportNotFound, $"MKL left on its default dispatch: {path} does not export {ExportName}");
        var error = NativeCode.Overwrite(function, ReturnOne);
        if (error is not null)
            return new(MklFastPathOutcome.PatchFailed, $"MKL left on its default dispatch: patching {ExportName} failed ({error})");
        var width = Avx512F.IsSupported ? "AVX-512" : "AVX2";
        return new(MklFastPathOutcome.Enabled,
            $"MKL fast path on: {ExportName} in {path} now returns 1, so MKL uses its {width} kernels on this {CpuVendor()} CPU (AVX2+FMA present; {OptOutVariable}=0 turns this off)");
    }

    /// <summary>
    /// The code path MKL's dispatcher reports (its exported <c>mkl_serv_cpu_detect</c>: 0 is its generic path; higher
    /// numbers are wider instruction sets, 7 is AVX-512 on this libtorch build), or null where libtorch_cpu.so is not
    /// loaded or lacks the export. With the fast path on, a CPU with AVX-512 reports a higher path than without it.
    /// </summary>
    public static unsafe int? DetectedCodePath()
    {
        var path = NativeCode.LoadedLibraryPath(TorchCpuLibrary);
        if (path is null) return null;
        var handle = NativeLibrary.Load(path);
        if (!NativeLibrary.TryGetExport(handle, CpuDetectExportName, out var function)) return null;
        return ((delegate* unmanaged<int>)function)();
    }
}
