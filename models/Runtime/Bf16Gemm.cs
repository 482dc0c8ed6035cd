using System.Runtime.Intrinsics.X86;

namespace RAE.Models.Runtime;

/// <summary>How bf16 matrix products and attention run on the CPU under a bf16 <see cref="Nn.Autocast"/> scope.</summary>
public enum Bf16GemmMode
{
    /// <summary>libtorch's bf16 kernels (oneDNN on AVX-512 CPUs).</summary>
    Native,

    /// <summary>
    /// bf16-rounded operands multiplied by the fp32 kernels, results rounded to bf16: the products of two bf16 values are
    /// exact in fp32 and the sums accumulate in fp32, as oneDNN's bf16 GEMM does, at the fp32 kernels' speed.
    /// </summary>
    Emulated,
}

/// <summary>What <see cref="Bf16Gemm.Resolve"/> decided, with the line the runtime logs.</summary>
public sealed record Bf16GemmChoice(Bf16GemmMode Mode, string Description);

/// <summary>
/// libtorch sends a CPU bf16 GEMM to oneDNN only where the CPU has AVX-512 BW, VL and DQ (PyTorch's
/// <c>mkldnn_bf16_device_check</c>); elsewhere, on AVX2 machines such as AMD Zen 2/3, it takes at::native's reference
/// GEMM: measured on a 2-core Zen 3 (EPYC family 25 model 1), a 2048×768×768 bf16 linear took 130 ms against 13 ms in
/// fp32, a 512³ matmul ran at 1.3 GFLOP/s against 144, and attention's backward was 6× slower than fp32. There the bf16
/// scope computes through <see cref="Bf16GemmMode.Emulated"/>: the same bf16 numerics, no 10–100× slowdown (no speed-up
/// either: without bf16 instructions nothing beats the fp32 kernels). <c>RAE_BF16_GEMM=native|emulated</c> forces a mode.
/// </summary>
public static class Bf16Gemm
{
    public const string OverrideVariable = "RAE_BF16_GEMM";

    private static readonly Lazy<Bf16GemmChoice> cpu = new(() => Resolve(
        Environment.GetEnvironmentVariable(OverrideVariable),
        System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64,
        Avx512BW.IsSupported && Avx512BW.VL.IsSupported && Avx512DQ.IsSupported));

    /// <summary>The mode this process uses for CPU tensors (decided once).</summary>
    public static Bf16GemmChoice Cpu => cpu.Value;

    [ThreadStatic] private static Bf16GemmMode? forced;

    /// <summary>Whether a bf16 product of tensors on <paramref name="device"/> computes through the fp32 kernels.</summary>
    public static bool EmulatesOn(TorchSharp.torch.Device device) =>
        device.type == TorchSharp.DeviceType.CPU && (forced ?? Cpu.Mode) == Bf16GemmMode.Emulated;

    /// <summary>Uses <paramref name="mode"/> on this thread until disposed (A/B measurements and tests).</summary>
    public static IDisposable Use(Bf16GemmMode mode)
    {
        var previous = forced;
        forced = mode;
        return new Restore(previous);
    }

    private sealed class Restore(Bf16GemmMode? previous) : IDisposable
    {
        public void Dispose() => forced = previous;
    }

    /// <summary>
    /// The mode for an override value (null or "auto": decide from the CPU), the architecture and whether the CPU has
    /// AVX-512 BW+VL+DQ. Non-x86 CPUs keep libtorch's own dispatch.
    /// </summary>
    public static Bf16GemmChoice Resolve(string? overrideValue, bool isX64, bool hasAvx512Core)
    {
        switch (overrideValue?.Trim().ToLowerInvariant())
        {
            case null or "" or "auto":
                break;
            case "native":
                return new(Bf16GemmMode.Native, $"bf16 GEMM: libtorch's bf16 kernels ({OverrideVariable}=native)");
            case "emulated":
                return new(Bf16GemmMode.Emulated, $"bf16 GEMM: emulated on the fp32 kernels ({OverrideVariable}=emulated)");
            default:
                throw new RuntimeSettingException(OverrideVariable, $"{OverrideVariable}='{overrideValue}' is not one of auto, native, emulated");
        }
        if (!isX64 || hasAvx512Core)
        {
            return new(Bf16GemmMode.Native, isX64
                ? "bf16 GEMM: libtorch's bf16 kernels (oneDNN; AVX-512 BW/VL/DQ present)"
                : "bf16 GEMM: libtorch's bf16 kernels (not x86-64: libtorch dispatches)");
        }
        return new(Bf16GemmMode.Emulated,
            "bf16 GEMM: emulated on the fp32 kernels (no AVX-512 BW/VL/DQ: libtorch's bf16 GEMM would take its reference " +
            $"path, 10-100x slower than fp32); bf16 precision runs no faster than fp32 on this CPU ({OverrideVariable}=native forces libtorch's)");
    }
}
