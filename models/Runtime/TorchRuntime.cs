using Microsoft.Extensions.Logging;
using TorchSharp;

namespace RAE.Models.Runtime;

/// <summary>Process-wide libtorch set-up that must happen before the first tensor computation.</summary>
public static class TorchRuntime
{
    /// <summary>
    /// Loads libtorch's CPU library through TorchSharp, then applies <see cref="MklFastPath"/> (before any BLAS call can
    /// fix MKL's dispatch) and logs one line saying what was done and why. Safe to call more than once.
    /// </summary>
    public static MklFastPathResult Initialise(ILogger logger)
    {
        torch.InitializeDeviceType(DeviceType.CPU);
        var result = MklFastPath.Apply();
        logger.LogInformation("{MklFastPath}", result.Description);
        return result;
    }
}
