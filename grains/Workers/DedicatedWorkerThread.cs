using System.Collections.Concurrent;

namespace RAE.Grains.Workers;

/// <summary>
/// One long-running thread outside the Orleans scheduler that runs a rank's heavy tensor work in submission order.
/// Grains await the returned tasks; their continuations come back to the grain's own scheduler.
/// </summary>
/// <param name="name">The thread's name.</param>
/// <param name="intraOpThreads">libtorch intra-op threads set on the thread before any work (0: leave as is). Every
/// worker of a silo must ask for the same count: OpenMP keeps it per thread but MKL's is process-wide, and a kernel's
/// arithmetic (so a sampled unit's bytes) may depend on it.</param>
public sealed class DedicatedWorkerThread : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();
    private readonly Thread _thread;
    private readonly int _intraOpThreads;

    public DedicatedWorkerThread(string name, int intraOpThreads = 0)
    {
        _intraOpThreads = intraOpThreads;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public Task<T> InvokeAsync<T>(Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _queue.Add(() =>
            {
                try
                {
                    completion.SetResult(work());
                }
                catch (Exception error)
                {
                    completion.SetException(error);
                }
            });
        }
        catch (InvalidOperationException)
        {
            completion.SetException(new ObjectDisposedException(_thread.Name, "The worker thread was stopped."));
        }
        return completion.Task;
    }

    public Task InvokeAsync(Action work) => InvokeAsync(() =>
    {
        work();
        return true;
    });

    private void Run()
    {
        if (_intraOpThreads > 0) TorchSharp.torch.set_num_threads(_intraOpThreads);
        foreach (var work in _queue.GetConsumingEnumerable()) work();
    }

    /// <summary>Lets queued work finish, then ends the thread.</summary>
    public void Dispose()
    {
        _queue.CompleteAdding();
        if (Thread.CurrentThread != _thread) _thread.Join();
        _queue.Dispose();
    }
}
