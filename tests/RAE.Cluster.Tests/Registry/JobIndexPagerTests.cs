using RAE.GrainInterfaces;
using RAE.Grains.Jobs;

namespace RAE.Cluster.Tests.Registry;

/// <summary>The index pager against partitions held in memory: pages equal a full sort, and reads stay few when ordered.</summary>
public sealed class JobIndexPagerTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PagesWalkEveryEntryOnceInCreatedOrder(bool appendedInCreatedOrder)
    {
        var random = new Random(13);
        var total = IJobIndexPartitionGrain.Capacity * 4 + 17;
        var entries = Enumerable.Range(0, total)
            .Select(i => new JobIndexEntry($"job-{i:D4}", Start.AddSeconds(appendedInCreatedOrder ? i : random.Next(total / 2))))
            .ToList();
        var partitions = entries.Chunk(IJobIndexPartitionGrain.Capacity).Select(chunk => (IReadOnlyList<JobIndexEntry>)chunk.ToList()).ToList();
        // One job listed twice, as an append interrupted before its entry recorded the partition leaves it.
        partitions[^1] = [.. partitions[^1], entries[3]];
        var reads = 0;
        var pager = new JobIndexPager(number => { reads++; return Task.FromResult(partitions[number]); });
        var expected = entries.Order(Comparer<JobIndexEntry>.Create(JobIndexPager.Compare)).Select(e => e.JobId).ToList();

        var walked = new List<string>();
        JobIndexEntry? cursor = null;
        var readsPerPage = new List<int>();
        while (true)
        {
            reads = 0;
            var page = await pager.PageAsync(partitions.Count, cursor, 50);
            readsPerPage.Add(reads);
            walked.AddRange(page.Select(e => e.JobId));
            if (page.Count < 50) break;
            cursor = page[^1];
        }

        Assert.Equal(expected, walked);
        if (appendedInCreatedOrder)
        {
            // After the first page has seen every partition, a page reads the open one and at most two full ones.
            Assert.Equal(partitions.Count, readsPerPage[0]);
            Assert.All(readsPerPage.Skip(1), count => Assert.InRange(count, 1, 3));
        }
    }
}
