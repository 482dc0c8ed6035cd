using RAE.Grains;

namespace RAE.Cluster.Tests;

/// <summary>
/// Runs an in-process reference computation with the intra-op thread count of the test cluster's workers. A test
/// thread's count is whatever libtorch's process-wide default was when the thread first computed; before MKL's strict
/// reproducibility was set (<c>MklReproducibility</c>) a batch-1 ResNet18 encode differed in ~2,000 of 6,144 values
/// between 1 and 2 threads and two cluster tests were flaky. Kept so that a comparison with the cluster's bits never
/// rests on every kernel being thread-count independent.
/// </summary>
internal static class SiloArithmetic
{
    /// <summary>The silos' default <see cref="RankDeviceOptions.ThreadsPerRank"/>, which the test clusters keep.</summary>
    public static int Threads { get; } = new RankDeviceOptions().ThreadsPerRank;

    public static T Run<T>(Func<T> computation)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                TorchSharp.torch.set_num_threads(Threads);
                result = computation();
            }
            catch (Exception error)
            {
                failure = error;
            }
        }) { Name = "silo-arithmetic" };
        thread.Start();
        thread.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return result;
    }
}
