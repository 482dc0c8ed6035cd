using RAE.Grains;

namespace RAE.Cluster.Tests;

/// <summary>
/// Runs an in-process reference computation with the intra-op thread count of the test cluster's workers. MKL's AVX2
/// kernels split some products across threads (a batch-1 ResNet18 encode differs in ~2,000 of 6,144 values between 1
/// and 2 threads), and a test thread's count is whatever libtorch's process-wide default was when the thread first
/// computed, so a comparison with the cluster's bits must fix it.
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
