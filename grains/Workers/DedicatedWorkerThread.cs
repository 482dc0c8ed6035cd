using System.Collections.Concurrent;

namespace RAE.Grains.Workers;

/// <summary>
/// One long-running thread outside the Orleans scheduler that runs a rank's heavy tensor work in submission order.
/// Grains await the returned tasks; their continuations come back to the grain's own scheduler. Stopping it never blocks
/// the caller: <see cref="Dispose"/> only signals, and the thread ends by itself once the work queued before it is done.
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
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public DedicatedWorkerThread(string name, int intraOpThreads = 0)
    {
        _intraOpThreads = intraOpThreads;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Completes when the thread has run its last work item and ended.</summary>
    public Task Completion => _ended.Task;

    /// <summary>
    /// Queues <paramref name="work"/>; a <paramref name="cancellationToken"/> cancelled before the work's turn comes skips
    /// it (the task is cancelled). Work that has started checks the token itself.
    /// </summary>
    public Task<T> InvokeAsync<T>(Func<T> work, CancellationToken cancellationToken = default)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _queue.Add(() =>
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    completion.SetCanceled(cancellationToken);
                    return;
                }
                try
                {
                    completion.SetResult(work());
                }
                catch (OperationCanceledException cancelled) when (cancelled.CancellationToken == cancellationToken && cancellationToken.IsCancellationRequested)
                {
                    completion.SetCanceled(cancellationToken);
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

    public Task InvokeAsync(Action work, CancellationToken cancellationToken = default) => InvokeAsync(() =>
    {
        work();
        return true;
    }, cancellationToken);

    private void Run()
    {
        try
        {
            if (_intraOpThreads > 0) TorchSharp.torch.set_num_threads(_intraOpThreads);
            foreach (var work in _queue.GetConsumingEnumerable()) work();
        }
        finally
        {
            // The thread owns the queue's end: disposing it from a caller would pull it from under a running item.
            _queue.Dispose();
            _ended.TrySetResult();
        }
    }

    /// <summary>Takes no more work and returns at once; the work already queued still runs, then the thread ends.</summary>
    public void Dispose()
    {
        try
        {
            _queue.CompleteAdding();
        }
        catch (ObjectDisposedException)
        {
            // The thread already ended.
        }
    }

    /// <summary>
    /// <see cref="Dispose"/>, then waits without blocking until the thread has ended or <paramref name="cancellationToken"/>
    /// fires (a hung item keeps its thread; the caller goes on).
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        try
        {
            await Completion.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Out of time: the thread ends by itself once its current item returns.
        }
    }
}
