using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Checkpoints;

public sealed class CheckpointRetentionPolicyTests
{
    /// <summary>Steps 1..n with the given losses (null: no loss recorded).</summary>
    private static List<CheckpointInfo> Committed(params double?[] losses) =>
        losses.Select((loss, i) => new CheckpointInfo("job", i + 1, $"checkpoints/job/step-{i + 1:D9}.ckpt", 10, "00", loss, DateTimeOffset.UnixEpoch)).ToList();

    private static long[] Kept(CheckpointRetentionPolicy policy, List<CheckpointInfo> committed) =>
        policy.StepsToKeep(committed).Order().ToArray();

    [Fact]
    public void KeepLastKeepsTheNewestK()
    {
        var committed = Committed(5, 4, 3, 2, 1, 0.5);
        Assert.Equal([4L, 5L, 6L], Kept(new CheckpointRetentionPolicy { KeepLast = 3 }, committed));
        Assert.Equal([6L], Kept(new CheckpointRetentionPolicy { KeepLast = 1 }, committed));
        Assert.Equal([1L, 2L, 3L, 4L, 5L, 6L], Kept(new CheckpointRetentionPolicy { KeepLast = 10 }, committed));
    }

    [Fact]
    public void KeepEveryKeepsTheMultiplesOfPAndTheNewest()
    {
        var committed = Committed(1, 1, 1, 1, 1, 1, 1);
        Assert.Equal([3L, 6L, 7L], Kept(new CheckpointRetentionPolicy { KeepEvery = 3 }, committed));
        Assert.Equal([1L, 2L, 3L, 4L, 5L, 6L, 7L], Kept(CheckpointRetentionPolicy.KeepAll, committed));
    }

    [Fact]
    public void KeepBestKeepsTheLowestLossesPreferringNewerOnTiesAndSkippingMissingLosses()
    {
        var committed = Committed(0.9, 0.2, null, 0.5, 0.2, 0.7, double.NaN, 0.8);
        Assert.Equal([2L, 5L, 8L], Kept(new CheckpointRetentionPolicy { KeepBest = 2 }, committed));
        Assert.Equal([5L, 8L], Kept(new CheckpointRetentionPolicy { KeepBest = 1 }, committed));
        Assert.Equal([2L, 4L, 5L, 6L, 8L], Kept(new CheckpointRetentionPolicy { KeepBest = 4 }, committed));
    }

    [Fact]
    public void RulesAreAUnionAndTheNewestIsAlwaysKept()
    {
        var committed = Committed(0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.35, 0.45);
        var policy = new CheckpointRetentionPolicy { KeepLast = 2, KeepEvery = 4, KeepBest = 2 };
        Assert.Equal([2L, 4L, 8L, 9L, 10L], Kept(policy, committed));
        Assert.Equal([10L], Kept(new CheckpointRetentionPolicy(), committed));
        Assert.Empty(Kept(policy, []));
    }

    [Fact]
    public void TheNewestCheckpointWithAFiniteLossIsAlwaysKept()
    {
        var committed = Committed(0.9, 0.5, 0.4, double.NaN, double.PositiveInfinity, null);
        Assert.Equal([3L, 6L], Kept(new CheckpointRetentionPolicy { KeepLast = 1 }, committed));
        Assert.Equal([3L, 4L, 5L, 6L], Kept(new CheckpointRetentionPolicy { KeepLast = 3 }, committed));
        Assert.Equal([2L], Kept(new CheckpointRetentionPolicy(), Committed(double.NaN, null)));
    }

    [Fact]
    public void TheDefaultKeepsTheLastThree()
    {
        Assert.Equal(new CheckpointRetentionPolicy { KeepLast = 3 }, CheckpointRetentionPolicy.Default);
        Assert.Equal(CheckpointRetentionPolicy.Default, new TrainingJobSpec().Retention);
    }

    [Fact]
    public void NegativeRulesAreRejectedWithEveryRuleNamed()
    {
        var error = Assert.Throws<RaeJobException>(() => new CheckpointRetentionPolicy { KeepLast = -1, KeepBest = -2 }.Validate());
        Assert.Contains("training.keep_last must be 0 (off) or positive, got -1", error.Message);
        Assert.Contains("training.keep_best must be 0 (off) or positive, got -2", error.Message);
    }
}
