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
    /// Single-threaded 1024³ fp32 matmul rate in two child processes, fast path on and off (RAE_MKL_FAST_PATH=0), each the
    /// best of about two seconds of repeats, alternating twice. MKL's AVX-512 kernels run at about twice its AVX2 path on
    /// this CPU; 1.3× is a generous margin for a shared machine.
    /// </summary>
    [MklFastPathEligibleFact]
    public void MatmulsRunMeasurablyFasterWithTheFastPathThanWithoutIt()
    {
        var on = new List<double>();
        var off = new List<double>();
        for (var round = 0; round < 2; round++)
        {
            var fast = Probe(fastPath: true);
            Assert.Equal(nameof(MklFastPathOutcome.Enabled), fast.Outcome);
            on.Add(fast.GflopsPerSecond);
            var slow = Probe(fastPath: false);
            Assert.Equal(nameof(MklFastPathOutcome.DisabledByEnvironment), slow.Outcome);
            off.Add(slow.GflopsPerSecond);
        }
        var ratio = on.Max() / off.Max();
        Assert.True(ratio >= 1.3, $"fast path {on.Max():F1} GFLOP/s vs default {off.Max():F1} GFLOP/s: ratio {ratio:F2} < 1.3");
    }

    private static MklProbeResult Probe(bool fastPath)
    {
        var line = ProbeProgram.Run(new Dictionary<string, string> { [MklFastPath.OptOutVariable] = fastPath ? "1" : "0" }, "--mkl-probe", "1024");
        return JsonSerializer.Deserialize<MklProbeResult>(line) ?? throw new InvalidOperationException($"unreadable probe output '{line}'");
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
