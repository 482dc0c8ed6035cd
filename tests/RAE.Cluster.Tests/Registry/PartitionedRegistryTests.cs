using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using Xunit.Abstractions;
using Orleans.TestingHost;
using RAE.GrainInterfaces;
using RAE.Grains;
using RAE.Grains.Jobs;
using RAE.Grains.Training;

namespace RAE.Cluster.Tests.Registry;

/// <summary>
/// The job catalog in bounded pieces: per-job entries, index partitions of at most <see cref="IJobIndexPartitionGrain.Capacity"/>
/// ids and active-jobs buckets. Jobs here are reported directly (no job grain runs), so hundreds cost seconds.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class PartitionedRegistryTests(ClusterFixture fixture, ITestOutputHelper output)
{
    private const int Jobs = 300;

    /// <summary>The grain types whose state makes up the catalog (file-storage folders are named after them).</summary>
    private static readonly string[] CatalogGrainTypes = ["jobregistry", "jobentry", "jobindex", "jobindexpartition", "activejobs"];

    private IJobRegistryGrain Registry => fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task EveryCatalogWriteStaysBoundedWhateverTheNumberOfJobs()
    {
        var prefix = "bounded-" + Guid.NewGuid().ToString("N")[..8] + "-";
        var start = DateTimeOffset.UtcNow.AddDays(-1);
        // Created times in a scrambled order: the listing must sort them, not trust the order they were appended in.
        var jobs = Enumerable.Range(0, Jobs)
            .Select(i => new JobSummary($"{prefix}{i:D3}", JobKind.Training, JobState.Pending, 0, 10, start.AddSeconds(i * 7919 % Jobs), start, null))
            .ToList();
        var largestAfterFirstBatch = 0L;
        foreach (var (batch, index) in jobs.Chunk(10).Select((batch, index) => (batch, index)))
        {
            await Task.WhenAll(batch.Select(job => Registry.Report(job)));
            await Task.WhenAll(batch.Select(job => Registry.Report(job with { State = JobState.Completed, Progress = 10, UpdatedAt = start.AddHours(1) })));
            if (index == 0) largestAfterFirstBatch = LargestCatalogStateFiles().Max(f => f.Length);
        }

        var files = LargestCatalogStateFiles();
        foreach (var group in files.GroupBy(f => f.Directory!.Name))
            output.WriteLine($"{group.Key}: {group.Count()} state file(s), largest {group.Max(f => f.Length)} bytes after {Jobs} jobs");
        var partitionBound = IJobIndexPartitionGrain.Capacity * (prefix.Length + 3 + 64) + 512;
        foreach (var file in files)
        {
            var bound = file.Directory!.Name == "jobindexpartition" ? partitionBound : 2048;
            Assert.True(file.Length <= bound, $"{file.Directory.Name}/{file.Name} holds {file.Length} bytes after {Jobs} jobs; bound {bound}");
        }
        // The registry's own state (the whole catalog before) is never written by reports.
        Assert.DoesNotContain(files, f => f.Directory!.Name == "jobregistry" && f.Length > 256);
        Assert.True(files.Max(f => f.Length) <= Math.Max(largestAfterFirstBatch, partitionBound),
            $"the largest catalog state grew from {largestAfterFirstBatch} bytes after 10 jobs to {files.Max(f => f.Length)} after {Jobs}");

        var partitions = await fixture.Grains.GetGrain<IJobIndexGrain>(IJobIndexGrain.DefaultKey).PartitionCount();
        var pages = await Task.WhenAll(Enumerable.Range(0, partitions).Select(n => fixture.Grains.GetGrain<IJobIndexPartitionGrain>(n).GetEntries()));
        Assert.All(pages, page => Assert.True(page.Count <= IJobIndexPartitionGrain.Capacity));
        var holdingOurs = pages.Count(page => page.Any(e => e.JobId.StartsWith(prefix, StringComparison.Ordinal)));
        Assert.True(holdingOurs >= (Jobs + IJobIndexPartitionGrain.Capacity - 1) / IJobIndexPartitionGrain.Capacity,
            $"{Jobs} jobs were indexed in {holdingOurs} partition(s) of at most {IJobIndexPartitionGrain.Capacity}");

        var expectedOrder = jobs.OrderBy(j => j.CreatedAt).ThenBy(j => j.JobId, StringComparer.Ordinal).Select(j => j.JobId).ToList();
        var listed = (await Registry.List()).Where(j => j.JobId.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        Assert.Equal(expectedOrder, listed.Select(j => j.JobId));
        Assert.All(listed, j => Assert.Equal((JobState.Completed, 10L), (j.State, j.Progress)));
        Assert.DoesNotContain(await Registry.ListUnfinished(), j => j.JobId.StartsWith(prefix, StringComparison.Ordinal));

        // Pages of 37 walk the same list, each starting after the last job of the one before.
        var paged = new List<JobSummary>();
        string? after = null;
        while (true)
        {
            var page = await Registry.List(after, 37);
            Assert.True(page.Count <= 37);
            paged.AddRange(page);
            if (page.Count < 37) break;
            after = page[^1].JobId;
        }
        Assert.Equal(expectedOrder, paged.Where(j => j.JobId.StartsWith(prefix, StringComparison.Ordinal)).Select(j => j.JobId));
        Assert.Equal(expectedOrder.Skip(11).Take(5), (await Registry.List(expectedOrder[10], 5)).Select(j => j.JobId));
    }

    [Fact]
    public async Task GetCancelAndPagingNameUnknownJobsAndProgressIsVisibleAtOnce()
    {
        var jobId = "progress-" + Guid.NewGuid().ToString("N")[..8];
        var created = DateTimeOffset.UtcNow;
        await Registry.Report(new JobSummary(jobId, JobKind.Evaluation, JobState.Running, 1, 8, created, created, null));
        await Registry.Report(new JobSummary(jobId, JobKind.Evaluation, JobState.Running, 5, 8, created.AddMinutes(5), created.AddMinutes(5), null));
        var summary = await Registry.Get(jobId);
        // A later report keeps the job's first created time.
        Assert.Equal((JobState.Running, 5L, created), (summary.State, summary.Progress, summary.CreatedAt));
        Assert.Contains(await Registry.ListUnfinished(), j => j.JobId == jobId);
        await Registry.Report(summary with { State = JobState.Cancelled });
        Assert.DoesNotContain(await Registry.ListUnfinished(), j => j.JobId == jobId);

        var unknown = "never-" + Guid.NewGuid().ToString("N")[..8];
        Assert.Contains($"Job '{unknown}' is unknown", (await Assert.ThrowsAsync<RaeJobException>(() => Registry.Get(unknown))).Message);
        Assert.Contains($"Job '{unknown}' is unknown", (await Assert.ThrowsAsync<RaeJobException>(() => Registry.Cancel(unknown))).Message);
        Assert.Contains($"Job '{unknown}' is unknown", (await Assert.ThrowsAsync<RaeJobException>(() => Registry.List(unknown, 10))).Message);
        Assert.Contains("1 to 1000 jobs; 0 was asked for", (await Assert.ThrowsAsync<RaeJobException>(() => Registry.List(null, 0))).Message);
    }

    [Fact]
    public async Task AResumePassClearsAFinishedJobLeftInItsBucketByACrash()
    {
        var jobId = "stale-" + Guid.NewGuid().ToString("N")[..8];
        var created = DateTimeOffset.UtcNow;
        await Registry.Report(new JobSummary(jobId, JobKind.Evaluation, JobState.Completed, 4, 4, created, created, null));
        // As if the silo died after the entry was written as ended but before the job left its bucket.
        var bucket = fixture.Grains.GetGrain<IActiveJobsGrain>(JobEntryGrain.BucketOf(jobId));
        await bucket.Add(new ActiveJob(jobId, JobKind.Evaluation));
        Assert.DoesNotContain(await Registry.ListUnfinished(), j => j.JobId == jobId);

        await fixture.Grains.GetGrain<IJobRegistryMaintenance>(IJobRegistryGrain.DefaultKey).ResumeUnfinished();

        Assert.DoesNotContain(await bucket.List(), j => j.JobId == jobId);
    }

    [Fact]
    public async Task TheFormerSingleStateIsSplitIntoTheCatalogOnFirstActivationThenCleared()
    {
        var prefix = "migrated-" + Guid.NewGuid().ToString("N")[..8] + "-";
        var start = DateTimeOffset.UtcNow.AddDays(-2);
        var old = new JobRegistryState();
        for (var i = 0; i < 200; i++)
        {
            var state = i % 3 == 0 ? JobState.Failed : JobState.Completed;
            old.Jobs[$"{prefix}{i:D3}"] = new JobSummary($"{prefix}{i:D3}", JobKind.Sampling, state, i, 200, start.AddMinutes(200 - i), start.AddDays(1), state == JobState.Failed ? "out of disk" : null);
        }
        var running = prefix + "running";
        old.Jobs[running] = new JobSummary(running, JobKind.Evaluation, JobState.Running, 3, 9, start, start, null);
        // A job that reported after the old state was last written: its newer entry wins over the old summary.
        var newer = prefix + "000";
        await Registry.Report(old.Jobs[newer] with { State = JobState.Cancelled, Progress = 7 });

        // A registry of its own key, so the cluster's registry (already active) is not disturbed; the catalog is shared.
        var legacy = fixture.Grains.GetGrain<IJobRegistryGrain>("legacy-" + Guid.NewGuid().ToString("N")[..8]);
        var storage = ((InProcessSiloHandle)fixture.Cluster.Primary!).SiloHost.Services.GetRequiredKeyedService<IGrainStorage>(RaeStorage.GrainStateProvider);
        await storage.WriteStateAsync("registry", legacy.GetGrainId(), new GrainState<JobRegistryState>(old));

        try
        {
            // The first call activates the legacy registry, which moves its jobs before it answers.
            Assert.Single(await legacy.List(null, 1));

            var listed = (await Registry.List()).Where(j => j.JobId.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var expected = old.Jobs.Values.OrderBy(j => j.CreatedAt).ThenBy(j => j.JobId, StringComparer.Ordinal).Select(j => j.JobId);
            Assert.Equal(expected, listed.Select(j => j.JobId));
            foreach (var job in listed.Where(j => j.JobId != newer))
                Assert.Equal(old.Jobs[job.JobId], job);
            Assert.Equal((JobState.Cancelled, 7L), (listed.Single(j => j.JobId == newer).State, listed.Single(j => j.JobId == newer).Progress));
            Assert.Contains(await Registry.ListUnfinished(), j => j.JobId == running);

            var after = new GrainState<JobRegistryState>();
            await storage.ReadStateAsync("registry", legacy.GetGrainId(), after);
            Assert.False(after.RecordExists, "the former single state is cleared once its jobs are moved");
        }
        finally
        {
            // The fake running job has no grain: end it so the silos stop trying to resume it.
            await Registry.Report(old.Jobs[running] with { State = JobState.Cancelled });
        }
    }

    /// <summary>The catalog's state files in the test cluster's file storage (one per grain and state).</summary>
    private List<FileInfo> LargestCatalogStateFiles()
    {
        var root = new DirectoryInfo(Path.Combine(fixture.DataFolder, "grain-state"));
        return CatalogGrainTypes
            .Select(type => new DirectoryInfo(Path.Combine(root.FullName, type)))
            .Where(folder => folder.Exists)
            .SelectMany(folder => folder.GetFiles("*.state"))
            .ToList();
    }
}
