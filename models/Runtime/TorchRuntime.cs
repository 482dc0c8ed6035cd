using Microsoft.Extensions.Logging;
using TorchSharp;

namespace RAE.Models.Runtime;

/// <summary>What <see cref="TorchRuntime.Initialise"/> did.</summary>
public sealed record TorchRuntimeSetup(MklFastPathResult MklFastPath, MklReproducibilityResult MklReproducibility, DeferredScalarReleaseResult ScalarRelease);

/// <summary>Process-wide libtorch set-up that must happen before the first tensor computation.</summary>
public static class TorchRuntime
{
    /// <summary>
    /// Tunes the native allocator for tensors (<see cref="NativeMemoryTuning"/>, before libtorch allocates anything),
    /// loads libtorch's CPU library through TorchSharp, then applies <see cref="MklFastPath"/> (before any BLAS call can
    /// fix MKL's dispatch), <see cref="MklReproducibility"/> (strict CNR, before the first BLAS call too) and <see cref="DeferredScalarRelease"/> (before scalars are released), and logs one line for
    /// each saying what was done and why. Safe to call more than once.
    /// </summary>
    public static TorchRuntimeSetup Initialise(ILogger logger)
    {
        var memory = NativeMemoryTuning.Apply();
        logger.LogInformation("{NativeMemoryTuning}", memory.Description);
        torch.InitializeDeviceType(DeviceType.CPU);
        var mkl = MklFastPath.Apply();
        logger.LogInformation("{MklFastPath}", mkl.Description);
        var reproducibility = MklReproducibility.Apply();
        logger.LogInformation("{MklReproducibility}", reproducibility.Description);
        var scalars = DeferredScalarRelease.Apply();
        logger.LogInformation("{ScalarRelease}", scalars.Description);
        logger.LogInformation("{Bf16Gemm}", Bf16Gemm.Cpu.Description);
        return new TorchRuntimeSetup(mkl, reproducibility, scalars);
    }
}
