using RAE.Client.Bench;

namespace RAE.Cluster.Tests.Bench;

public sealed class SchedulingNoiseProbeTests
{
    [Fact]
    public void ThreadsThatOutnumberTheCoresLoseTheTimeTheOthersRunAndTheFiguresAgree()
    {
        // Three spinning threads per core: each runs about a third of the time, so about two thirds are lost in gaps.
        var threads = 3 * Environment.ProcessorCount;
        var noise = SchedulingNoiseProbe.Measure(TimeSpan.FromSeconds(0.6), TimeSpan.FromMilliseconds(0.2), threads);

        Assert.Equal(threads, noise.Threads);
        Assert.InRange(noise.LostFraction, 0.3, 1.0);
        Assert.Equal(noise.LostSeconds / (threads * noise.Seconds), noise.LostFraction, 1e-12);
        Assert.True(noise.Gaps * noise.ThresholdSeconds <= noise.LostSeconds, $"{noise.Gaps} gaps above {noise.ThresholdSeconds} s lost only {noise.LostSeconds} s");
        Assert.InRange(noise.Percentile90GapSeconds, noise.ThresholdSeconds, noise.LongestGapSeconds);
    }

    [Fact]
    public void BadArgumentsAreRefusedWithTheirName()
    {
        Assert.Equal("threads", Assert.Throws<ArgumentOutOfRangeException>(() => SchedulingNoiseProbe.Measure(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(1), 0)).ParamName);
        Assert.Equal("duration", Assert.Throws<ArgumentOutOfRangeException>(() => SchedulingNoiseProbe.Measure(TimeSpan.Zero, TimeSpan.FromMilliseconds(1), 1)).ParamName);
        Assert.Equal("threshold", Assert.Throws<ArgumentOutOfRangeException>(() => SchedulingNoiseProbe.Measure(TimeSpan.FromSeconds(1), TimeSpan.Zero, 1)).ParamName);
    }
}
