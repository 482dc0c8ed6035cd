using RAE.GrainInterfaces;

namespace RAE.Grains.Jobs;

/// <summary>
/// Pages through the job index in created-time order (then id) without reading every partition. A full partition never
/// changes, so its first and last keys are remembered once read (one pair per partition, in memory); a page reads the
/// partitions that may hold keys after the cursor in order of their first key, and stops once the next one starts
/// beyond the page. Partitions are appended in about created-time order, so a page usually reads one or two.
/// </summary>
public sealed class JobIndexPager(Func<int, Task<IReadOnlyList<JobIndexEntry>>> readPartition)
{
    private readonly Dictionary<int, (JobIndexEntry First, JobIndexEntry Last)> _fullPartitionRanges = [];

    public static int Compare(JobIndexEntry left, JobIndexEntry right)
    {
        var byTime = left.CreatedAt.CompareTo(right.CreatedAt);
        return byTime != 0 ? byTime : string.CompareOrdinal(left.JobId, right.JobId);
    }

    /// <summary>At most <paramref name="limit"/> entries that sort after <paramref name="cursor"/> (null: from the first), in order.</summary>
    public async Task<IReadOnlyList<JobIndexEntry>> PageAsync(int partitionCount, JobIndexEntry? cursor, int limit)
    {
        var order = Comparer<JobIndexEntry>.Create(Compare);
        var partitions = Enumerable.Range(0, partitionCount).ToList();
        // Partitions of unknown range (not full, or not read since activation) must be read; the others are read in order
        // of their first key until one starts after the page's last entry.
        var unknown = partitions.Where(number => !_fullPartitionRanges.ContainsKey(number)).ToList();
        var known = partitions
            .Where(number => _fullPartitionRanges.TryGetValue(number, out var range) && (cursor is null || Compare(range.Last, cursor) > 0))
            .OrderBy(number => _fullPartitionRanges[number].First, order)
            .ToList();
        IReadOnlyList<JobIndexEntry> page = [];
        foreach (var number in unknown) page = await AddPartitionAsync(page, number, cursor, limit, order);
        foreach (var number in known)
        {
            if (page.Count >= limit && Compare(_fullPartitionRanges[number].First, page[^1]) > 0) break;
            page = await AddPartitionAsync(page, number, cursor, limit, order);
        }
        return page;
    }

    /// <summary>The first <paramref name="limit"/> of the page so far and the partition's entries after the cursor.</summary>
    private async Task<IReadOnlyList<JobIndexEntry>> AddPartitionAsync(IReadOnlyList<JobIndexEntry> page, int number, JobIndexEntry? cursor, int limit, IComparer<JobIndexEntry> order)
    {
        var entries = await readPartition(number);
        if (entries.Count >= IJobIndexPartitionGrain.Capacity)
            _fullPartitionRanges[number] = (entries.Min(order)!, entries.Max(order)!);
        return page.Concat(cursor is null ? entries : entries.Where(e => Compare(e, cursor) > 0))
            // An interrupted append may have listed a job twice (in two partitions).
            .DistinctBy(e => e.JobId, StringComparer.Ordinal)
            .Order(order)
            .Take(limit)
            .ToList();
    }
}
