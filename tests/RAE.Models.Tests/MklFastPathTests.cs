using System.Text.Json;
using RAE.Models.Runtime;

namespace RAE.Models.Tests;

/// <summary>A fact that runs only where MKL's fast path applies (Linux x86-64, not GenuineIntel, AVX2 and FMA).</summary>
public sealed class MklFastPathEligibleFactAttribute : FactAttribute
{
    public MklFastPathEligibleFactAttribute()
    {
        var reason = MklFastPath.Ineligibility();
        if (reason is not null && reason.Outcome != MklFastPathOutcome.DisabledByEnvironment) Skip = reason.Description;
    }
}

public sealed class MklFastPathTests
{
    [Fact]
    public void CpuVendorIsTheTwelveCharacterCpuidString()
    {
        var vendor = MklFastPath.CpuVendor();
        if (System.Runtime.Intrinsics.X86.X86Base.IsSupported)
        {
            Assert.NotNull(vendor);
            Assert.Equal(12, vendor.Length);
            Assert.True(vendor.All(char.IsAsciiLetterOrDigit), $"unexpected vendor string '{vendor}'");
        }
        else
        {
            Assert.Null(vendor);
        }
    }

    [MklFastPathEligibleFact]
    public void TheSuiteRunsWithTheFastPathOnAndTheExportNowReturnsOne()
    {
        var result = MklFastPath.Apply();
        if (Environment.GetEnvironmentVariable(MklFastPath.OptOutVariable) is "0")
        {
            Assert.Equal(MklFastPathOutcome.DisabledByEnvironment, result.Outcome);
            return;
        }
        Assert.True(result.Enabled, result.Description);
        Assert.Same(result, MklFastPath.Apply());
        Assert.Equal(1, MklIntelCpuTrue());
    }

    /// <summary>
    /// What MKL's own dispatcher reports (<c>mkl_serv_cpu_detect</c>) after a first matmul, in two child processes: with
    /// the fast path it names a wider code path than with RAE_MKL_FAST_PATH=0 (on this Zen 5-class CPU 7, its AVX-512
    /// path, against 0, its generic one). The speed this buys is measured by <c>rae bench model</c>, not here: a timed
    /// unit test would fail on a loaded machine.
    /// </summary>
    [MklFastPathEligibleFact]
    public void MklDispatchesToAWiderCodePathWithTheFastPathThanWithoutIt()
    {
        var on = Dispatch(fastPath: true);
        Assert.Equal(nameof(MklFastPathOutcome.Enabled), on.Outcome);
        var off = Dispatch(fastPath: false);
        Assert.Equal(nameof(MklFastPathOutcome.DisabledByEnvironment), off.Outcome);
        Assert.NotNull(on.CodePath);
        Assert.NotNull(off.CodePath);
        Assert.True(on.CodePath > off.CodePath, $"MKL reports code path {on.CodePath} with the fast path and {off.CodePath} without it");
    }

    private static MklDispatchResult Dispatch(bool fastPath)
    {
        var line = ProbeProgram.Run(new Dictionary<string, string> { [MklFastPath.OptOutVariable] = fastPath ? "1" : "0" }, "--mkl-dispatch");
        return JsonSerializer.Deserialize<MklDispatchResult>(line) ?? throw new InvalidOperationException($"unreadable probe output '{line}'");
    }

    private static int MklIntelCpuTrue()
    {
        var path = File.ReadLines("/proc/self/maps").Select(l => l.IndexOf('/') is var i and >= 0 ? l[i..] : "")
            .First(p => Path.GetFileName(p) == "libtorch_cpu.so");
        var handle = System.Runtime.InteropServices.NativeLibrary.Load(path);
        var function = System.Runtime.InteropServices.NativeLibrary.GetExport(handle, MklFastPath.ExportName);
        return System.Runtime.InteropServices.Marshal.GetDelegateForFunctionPointer<IntelCpuTrue>(function)();
    }

    private delegate int IntelCpuTrue();
}
