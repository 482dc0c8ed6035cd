using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging.Abstractions;
using RAE.Models.Runtime;

namespace RAE.Models.Tests;

internal static class TestRuntime
{
    /// <summary>The suite runs as the silo and the CLI do: libtorch loaded and MKL's fast path applied before any test.</summary>
#pragma warning disable CA2255 // a test assembly is the process's program here, not a library
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialise() => TorchRuntime.Initialise(NullLogger.Instance);
}
