using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging.Abstractions;
using RAE.Models.Runtime;

namespace RAE.Cluster.Tests;

internal static class TestRuntime
{
    /// <summary>
    /// The suite runs as the silo and the CLI do: libtorch loaded and MKL's fast path applied before any test. Without it
    /// this process's BLAS calls take MKL's generic path on this AMD CPU while silo processes (`rae bench silo`) take the
    /// AVX-512 one, and a computation replayed here differs from the cluster's in the last bits (TrainingKillReplayTests).
    /// </summary>
#pragma warning disable CA2255 // a test assembly is the process's program here, not a library
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialise() => TorchRuntime.Initialise(NullLogger.Instance);
}
