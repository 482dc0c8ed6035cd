using System.Collections.Concurrent;

namespace RAE.Grains.Workers;

/// <summary>
/// One long-running thread outside the Orleans scheduler that runs a rank's heavy tensor work in submission order.
/// Grains await the returned tasks; their continuations come back to the grain's own scheduler.
/// </summary>
public sealed class DedicatedWorkerThread : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();
    private readonly Thread _thread;

    public DedicatedWorkerThread(string name)
    {
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
