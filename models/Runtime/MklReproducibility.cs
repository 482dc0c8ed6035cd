using System.Runtime.InteropServices;

namespace RAE.Models.Runtime;

public sealed record MklReproducibilityResult(bool Strict, string Description);

/// <summary>
/// MKL's strict conditional numerical reproducibility (CNR), set once before the first BLAS call: the code path MKL picks
/// for the CPU (<c>MKL_CBWR_AUTO</c>) with <c>MKL_CBWR_STRICT</c>, so a product's bits no longer depend on how many
/// threads compute it. Without it MKL's AVX2 kernels split some products across threads: a batch-1 ResNet18 encode at
/// 64 px differs in 2,043 of 6,144 values between 1 and 2 threads, so a latent shard, a unit's features or an evaluation
/// score depended on the silo's <c>ThreadsPerRank</c>. Measured on this host: the 2048³ fp32 product ran at the same rate
/// either way (1 thread 73-83 GFLOP/s, 2 threads 119-120). <see cref="OptOutVariable"/>=0 leaves MKL as it is.
/// </summary>
public static class MklReproducibility
{
    public const string OptOutVariable = "RAE_MKL_STRICT_CNR";
    public const string ExportName = "mkl_serv_cbwr_set";
    private const string TorchCpuLibrary = "libtorch_cpu.so";
    private const int CbwrAuto = 2;
    private const int CbwrStrict = 0x10000;
    private static readonly Lock Gate = new();
    private static MklReproducibilityResult? applied;

    /// <summary>Sets strict CNR once per process (later calls return the first result); libtorch_cpu.so must be loaded.</summary>
    public static MklReproducibilityResult Apply()
    {
        lock (Gate) return applied ??= Set();
    }

    private static unsafe MklReproducibilityResult Set()
    {
        if (Environment.GetEnvironmentVariable(OptOutVariable) is "0")
            return new(false, $"MKL reproducibility left at MKL's default ({OptOutVariable}=0): a product's bits may depend on the thread count");
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return new(false, "MKL reproducibility left at MKL's default: libtorch's MKL is set only on Linux x86-64");
        var path = NativeCode.LoadedLibraryPath(TorchCpuLibrary);
        if (path is null) return new(false, $"MKL reproducibility left at MKL's default: {TorchCpuLibrary} is not loaded in this process");
        if (!NativeLibrary.TryGetExport(NativeLibrary.Load(path), ExportName, out var function))
            return new(false, $"MKL reproducibility left at MKL's default: {path} exports no {ExportName}");
        var status = ((delegate* unmanaged<int, int>)function)(CbwrAuto | CbwrStrict);
        return status == 0
            ? new(true, $"MKL strict reproducibility on: {ExportName}(AUTO|STRICT) in {path}, so a product's bits do not depend on the thread count ({OptOutVariable}=0 turns this off)")
            : new(false, $"MKL reproducibility left at MKL's default: {ExportName}(AUTO|STRICT) returned {status}");
    }
}
