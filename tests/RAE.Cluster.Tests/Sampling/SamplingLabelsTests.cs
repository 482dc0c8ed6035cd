using RAE.Grains.Sampling;

namespace RAE.Cluster.Tests.Sampling;

public sealed class SamplingLabelsTests
{
    [Fact]
    public void EqualLabelsHoldEveryClassEquallyOftenInASeededOrder()
    {
        var labels = SamplingLabels.Compute("equal", 30, 10, seed: 3);

        Assert.All(Enumerable.Range(0, 10), label => Assert.Equal(3, labels.Count(l => l == label)));
        Assert.Equal(labels, SamplingLabels.Compute("equal", 30, 10, seed: 3));
        Assert.NotEqual(labels, SamplingLabels.Compute("equal", 30, 10, seed: 4));
        Assert.NotEqual(Enumerable.Range(0, 30).Select(i => i / 3), labels);
    }

    [Fact]
    public void EqualLabelsForAnIndivisibleCountAppendUniformExtras()
    {
        var labels = SamplingLabels.Compute("equal", 23, 10, seed: 1);

        Assert.Equal(23, labels.Length);
        Assert.All(Enumerable.Range(0, 10), label => Assert.InRange(labels[..20].Count(l => l == label), 2, 2));
        Assert.All(labels[20..], label => Assert.InRange(label, 0, 9));
    }

    [Fact]
    public void RandomLabelsStayInRangeAndFollowTheSeed()
    {
        var labels = SamplingLabels.Compute("random", 200, 7, seed: 9);

        Assert.All(labels, label => Assert.InRange(label, 0, 6));
        Assert.Equal(7, labels.Distinct().Count());
        Assert.Equal(labels, SamplingLabels.Compute("random", 200, 7, seed: 9));
    }

    [Fact]
    public void UnitSeedsDependOnJobSeedAndUnitOnly()
    {
        var seeds = Enumerable.Range(0, 100).Select(unit => SamplingLabels.UnitSeed(42, unit)).ToList();

        Assert.Equal(100, seeds.Distinct().Count());
        Assert.All(seeds, seed => Assert.True(seed >= 0));
        Assert.Equal(seeds[17], SamplingLabels.UnitSeed(42, 17));
        Assert.NotEqual(seeds[17], SamplingLabels.UnitSeed(43, 17));
    }
}
