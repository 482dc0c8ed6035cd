using RAE.Grains.Workers;

namespace RAE.Cluster.Tests.Workers;

/// <summary>
/// Stopping a worker thread never waits for its work: each test holds the thread busy on an event that is set only after
/// the call under test returned, so a stop that joined the thread would never return (<see cref="HangGuard"/> turns that
/// into a failure; it bounds a hang, it measures nothing).
/// </summary>
public sealed class DedicatedWorkerThreadTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task DisposeReturnsWhileTheThreadIsBusyAndTheWorkQueuedBeforeStillRuns()
    {
        using var release = new ManualResetEventSlim();
        var thread = new DedicatedWorkerThread("test-busy-dispose");
        var busy = thread.InvokeAsync(() =>
        {
            release.Wait();
            return 1;
        });
        var queued = thread.InvokeAsync(() => 2);

        await Task.Run(thread.Dispose).WaitAsync(HangGuard);

        Assert.False(busy.IsCompleted);
        Assert.False(thread.Completion.IsCompleted);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => thread.InvokeAsync(() => 3));
        release.Set();
        Assert.Equal(1, await busy);
        Assert.Equal(2, await queued);
        await thread.Completion;
        thread.Dispose();
    }

    [Fact]
    public async Task StopAsyncGivesUpWaitingWhenItsTokenFiresAndTheThreadEndsByItselfLater()
    {
        using var release = new ManualResetEventSlim();
        var thread = new DedicatedWorkerThread("test-busy-stop");
        var busy = thread.InvokeAsync(() => release.Wait());
        using var outOfTime = new CancellationTokenSource();
        outOfTime.Cancel();

        await thread.StopAsync(outOfTime.Token).WaitAsync(HangGuard);

        Assert.False(thread.Completion.IsCompleted);
        release.Set();
        await busy;
        await thread.Completion;
    }

    [Fact]
    public async Task WorkWhoseTokenIsCancelledBeforeItsTurnIsSkipped()
    {
        using var release = new ManualResetEventSlim();
        var thread = new DedicatedWorkerThread("test-skip");
        var busy = thread.InvokeAsync(() => release.Wait());
        using var cancel = new CancellationTokenSource();
        var ran = false;
        var skipped = thread.InvokeAsync(() => ran = true, cancel.Token);
        var after = thread.InvokeAsync(() => 7);

        cancel.Cancel();
        release.Set();

        await busy;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => skipped);
        Assert.True(skipped.IsCanceled);
        Assert.False(ran);
        Assert.Equal(7, await after);
        await thread.StopAsync(CancellationToken.None);
        Assert.True(thread.Completion.IsCompleted);
    }
}
