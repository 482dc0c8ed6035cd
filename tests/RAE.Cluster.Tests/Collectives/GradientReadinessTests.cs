using RAE.Grains.Collectives;

namespace RAE.Cluster.Tests.Collectives;

public sealed class GradientReadinessTests
{
    [Fact]
    public void ThePrefixOnlyGrowsAndStaysWithinTheVector()
    {
        var readiness = new GradientReadiness(100);
        readiness.Advance(40);
        readiness.Advance(10); // a stale report changes nothing
        Assert.Equal(40, readiness.Ready);
        Assert.False(readiness.WhenComplete.IsCompleted);
        readiness.Advance(1_000);
        Assert.Equal(100, readiness.Ready);
        Assert.True(readiness.WhenComplete.IsCompletedSuccessfully);
        Assert.True(new GradientReadiness(0).WhenComplete.IsCompletedSuccessfully);
        Assert.Throws<ArgumentOutOfRangeException>(() => new GradientReadiness(-1));
    }

    [Fact]
    public async Task AWaitEndsWhenItsPrefixIsFinished()
    {
        var readiness = new GradientReadiness(100);
        var waiting = Task.Factory.StartNew(() => readiness.WaitFor(60, CancellationToken.None), TaskCreationOptions.LongRunning);
        readiness.Advance(59);
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted, "the wait for 60 values ended at 59");
        readiness.Advance(60);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        readiness.WaitFor(60, CancellationToken.None); // already there: returns at once
    }

    [Fact]
    public async Task AFailedComputationEndsEveryWaitWithACollectiveErrorThatNamesIt()
    {
        var readiness = new GradientReadiness(100);
        readiness.Advance(30);
        var waiting = Task.Factory.StartNew(() => readiness.WaitFor(100, CancellationToken.None), TaskCreationOptions.LongRunning);
        await Task.Delay(50);
        readiness.Fail(new InvalidOperationException("backward ran out of memory"));
        var error = await Assert.ThrowsAsync<CollectiveException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("backward ran out of memory", error.Message);
        Assert.Contains("after 30 of 100 values", error.Message);
        await Assert.ThrowsAsync<CollectiveException>(() => readiness.WhenComplete);
        readiness.WaitFor(30, CancellationToken.None); // what was finished before stays usable
        readiness.Advance(100); // a late report after the failure is ignored
        Assert.Equal(30, readiness.Ready);
    }

    [Fact]
    public async Task ACancelledWaitEndsAtOnce()
    {
        var readiness = new GradientReadiness(100);
        using var cancel = new CancellationTokenSource();
        var waiting = Task.Factory.StartNew(() => readiness.WaitFor(1, cancel.Token), TaskCreationOptions.LongRunning);
        await Task.Delay(50);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }
}
