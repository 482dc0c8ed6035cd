using RAE.GrainInterfaces;
using RAE.Grains.Workers;

namespace RAE.Cluster.Tests;

[CollectionDefinition(Name)]
public sealed class FailoverCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "three-silo cluster that loses a silo";
}

[Collection(FailoverCollection.Name)]
public sealed class FailoverTests(ClusterFixture fixture)
{
    [Fact]
    public async Task KillingTheSiloOfOneRankEndsInACompletedJobThatLostAtMostOneCheckpointInterval()
    {
        const int steps = 30, interval = 5;
        var spec = new TrainingJobSpec
        {
            Workload = TinyMlpWorker.WorkloadName,
            Ranks = 2,
            GlobalBatchSize = 8,
            Steps = steps,
            LearningRate = 0.01,
            Seed = 7,
            CheckpointInterval = interval,
            CollectiveTimeout = TimeSpan.FromSeconds(3),
            TinyMlp = new TinyMlpOptions { StepDelay = TimeSpan.FromMilliseconds(60) },
        };
        var registry = fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var jobId = await registry.SubmitTraining(spec);
        var coordinator = fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);

        TrainingJobStatus running;
        do
        {
            await Task.Delay(50);
            running = await coordinator.GetStatus();
        } while (running.Step < 8 && running.State is JobState.Pending or JobState.Running);
        Assert.Equal(JobState.Running, running.State);

        var primary = fixture.Cluster.Primary!.SiloAddress.ToParsableString();
        var victimAddress = running.Ranks.Select(r => r.SiloAddress).First(address => address != primary);
        var victim = fixture.Cluster.GetActiveSilos().Single(s => s.SiloAddress.ToParsableString() == victimAddress);
        await fixture.Cluster.KillSiloAsync(victim);
        var stepAtKill = (await coordinator.GetStatus()).Step;

        var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(120));
        var context = $"job ended {status.State} at step {status.Step} ({status.FailureReason}); recoveries {status.Recoveries}, restored from {status.RestoredFromStep}, killed {victimAddress} at step {stepAtKill}, ranks now {string.Join(", ", status.Ranks.Select(r => r.SiloAddress))}";
        Assert.True(status.State == JobState.Completed, context);
        Assert.Equal(steps, status.Step);
        Assert.True(status.Recoveries >= 1, "the job should have re-formed its group: " + context);
        Assert.True(status.Ranks.All(r => r.SiloAddress != victimAddress), context);
        Assert.True(status.Ranks.Count == 2, context); // two silos remain, one device each
        Assert.NotNull(status.RestoredFromStep);
        Assert.True(stepAtKill - status.RestoredFromStep!.Value <= interval, $"restored from step {status.RestoredFromStep} after the kill at step {stepAtKill}");

        var metrics = await coordinator.GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, steps).Select(s => (long)s), metrics.Select(m => m.Step));
    }
}
