using RAE.GrainInterfaces;
using RAE.Grains.Workers;

namespace RAE.Cluster.Tests.Scheduling;

/// <summary>One job's rank per device, the FIFO queue and hung-rank eviction, on the three-silo cluster (one device each).</summary>
[Collection(ClusterCollection.Name)]
public sealed class SchedulingTests(ClusterFixture fixture)
{
    internal static TrainingJobSpec Spec(int ranks, int steps, TimeSpan stepDelay, int globalBatch = 12) => new()
    {
        Workload = TinyMlpWorker.WorkloadName,
        Ranks = ranks,
        GlobalBatchSize = globalBatch,
        Steps = steps,
        LearningRate = 0.02,
        Seed = 99,
        CheckpointInterval = 2,
        CollectiveTimeout = TimeSpan.FromSeconds(20),
        TinyMlp = new TinyMlpOptions { StepDelay = stepDelay },
    };

    private IJobRegistryGrain Registry => fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task TwoJobsWithLongStepsRunAtTheSameTimeEachOnItsOwnDevice()
    {
        var first = await Registry.SubmitTraining(Spec(ranks: 1, steps: 8, TimeSpan.FromMilliseconds(150)));
        var second = await Registry.SubmitTraining(Spec(ranks: 1, steps: 8, TimeSpan.FromMilliseconds(150)));
        var firstStatus = await fixture.WaitForEndAsync(first);
        var secondStatus = await fixture.WaitForEndAsync(second);

        Assert.Equal((JobState.Completed, JobState.Completed), (firstStatus.State, secondStatus.State));
        Assert.NotEqual(firstStatus.Ranks.Single().RankGrainKey, secondStatus.Ranks.Single().RankGrainKey);
        var firstSteps = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(first).GetMetrics(0);
        var secondSteps = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(second).GetMetrics(0);
        // Neither waited for the other: their step intervals overlap.
        Assert.True(secondSteps[0].CompletedAt < firstSteps[^1].CompletedAt && firstSteps[0].CompletedAt < secondSteps[^1].CompletedAt,
            $"first ran {firstSteps[0].CompletedAt:O}..{firstSteps[^1].CompletedAt:O}, second {secondSteps[0].CompletedAt:O}..{secondSteps[^1].CompletedAt:O}");
    }

    [Fact]
    public async Task AJobThatCannotGetItsRanksWaitsInTheQueueAndRunsWhenTheDevicesFree()
    {
        var first = await Registry.SubmitTraining(Spec(ranks: 3, steps: 10, TimeSpan.FromMilliseconds(100)));
        var firstCoordinator = fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(first);
        await WaitUntilAsync(async () => (await firstCoordinator.GetStatus()).State == JobState.Running, "the first job runs");
        var second = await Registry.SubmitTraining(Spec(ranks: 3, steps: 4, TimeSpan.Zero));
        var secondCoordinator = fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(second);

        await WaitUntilAsync(async () => (await secondCoordinator.GetStatus()).QueuePosition == 1, "the second job is first in the queue");
        var waiting = await secondCoordinator.GetStatus();
        Assert.Equal(JobState.Pending, waiting.State);
        Assert.Empty(waiting.Ranks);
        var snapshot = await fixture.Grains.GetGrain<IDeviceSchedulerGrain>(IDeviceSchedulerGrain.DefaultKey).Snapshot();
        Assert.Equal([new QueuedJob(second, 3, 3, snapshot.Queue[0].Since)], snapshot.Queue);
        Assert.Equal(3, snapshot.Leases.Count(lease => lease.JobId == first));

        var firstEnd = await fixture.WaitForEndAsync(first);
        var secondEnd = await fixture.WaitForEndAsync(second);
        Assert.Equal((JobState.Completed, JobState.Completed), (firstEnd.State, secondEnd.State));
        Assert.Equal(3, secondEnd.Ranks.Count);
        Assert.Null(secondEnd.QueuePosition);
        var firstSteps = await firstCoordinator.GetMetrics(0);
        var secondSteps = await secondCoordinator.GetMetrics(0);
        Assert.True(secondSteps[0].CompletedAt > firstSteps[^1].CompletedAt, "the queued job ran only after the first one freed its devices");
        var after = await fixture.Grains.GetGrain<IDeviceSchedulerGrain>(IDeviceSchedulerGrain.DefaultKey).Snapshot();
        Assert.DoesNotContain(after.Leases, lease => lease.JobId == first || lease.JobId == second);
        Assert.Empty(after.Queue);
    }

    [Fact]
    public async Task AHungRankIsEvictedAfterTheCollectiveTimeoutAndTheGroupReformsWithoutIt()
    {
        var stall = TimeSpan.FromSeconds(8);
        var spec = Spec(ranks: 3, steps: 8, TimeSpan.Zero) with
        {
            CollectiveTimeout = TimeSpan.FromSeconds(2),
            TinyMlp = new TinyMlpOptions { StallRank = 2, StallAtStep = 3, StallFor = stall },
        };
        var jobId = await Registry.SubmitTraining(spec);
        var coordinator = fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        await WaitUntilAsync(async () => (await coordinator.GetStatus()).Ranks.Count == 3, "the job formed its first group");
        var hungKey = (await coordinator.GetStatus()).Ranks[2].RankGrainKey;

        var status = await fixture.WaitForEndAsync(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.FailureReason}");
        Assert.Equal(8, status.Step);
        Assert.Equal(2, status.Ranks.Count);
        Assert.DoesNotContain(status.Ranks, slot => slot.RankGrainKey == hungKey);
        Assert.True(status.Recoveries >= 1);
        var metrics = await coordinator.GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, 8).Select(s => (long)s), metrics.Select(m => m.Step));
        Assert.Equal(3, metrics[0].Ranks);
        Assert.Equal(2, metrics[^1].Ranks);

        // The stalled worker answers in the end; the job's Leave, queued behind it, then drops the replica.
        var hung = fixture.Grains.GetGrain<IRankGrain>(hungKey);
        await WaitUntilAsync(async () => !(await hung.HeldJobs()).Contains(jobId), "the evicted rank let the job go", stall * 3);
    }

    [Fact]
    public async Task DevicesLeasedToAJobThatDoesNotRunAreFreedBeforeAnotherJobIsMadeToWait()
    {
        var scheduler = fixture.Grains.GetGrain<IDeviceSchedulerGrain>(IDeviceSchedulerGrain.DefaultKey);
        // A lease whose release was lost: its holder is no job the cluster knows.
        var leaked = await scheduler.Request(new RankRequest("train-lost-release", [3], []));
        Assert.Equal(3, leaked.Slots.Count);

        var jobId = await Registry.SubmitTraining(Spec(ranks: 2, steps: 2, TimeSpan.Zero));
        var status = await fixture.WaitForEndAsync(jobId);
        Assert.Equal(JobState.Completed, status.State);
        Assert.Equal(2, status.Ranks.Count);
        Assert.DoesNotContain((await scheduler.Snapshot()).Leases, lease => lease.JobId == "train-lost-release");
    }

    internal static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting until {what}.");
            await Task.Delay(50);
        }
    }
}
