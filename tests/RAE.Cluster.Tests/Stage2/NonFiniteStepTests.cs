using RAE.GrainInterfaces;
using RAE.Models.Training;
using static RAE.Cluster.Tests.Stage2.DiTTestJobs;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>A dit-dh job whose loss turns NaN fails at that step, with its reason, and keeps the checkpoints before it.</summary>
[Collection(ClusterCollection.Name)]
public sealed class NonFiniteStepTests(ClusterFixture fixture)
{
    private const int Steps = 6;

    [Fact]
    public async Task AJobWhoseLossTurnsNaNFailsWithTheStepAndKeepsItsEarlierCheckpoint()
    {
        // A learning rate near float's limit: step 1 is finite, then the weights are ~1e37 and the forward overflows.
        var spec = Spec(ranks: 1, steps: Steps, overrides: ["training.optimizer.lr=1e38", "training.scheduler.base_lr=1e38", "training.scheduler.final_lr=1e38"])
            with { CheckpointInterval = 1 };
        var badStep = FirstNonFiniteStep(spec);
        Assert.InRange(badStep, 2, Steps);

        var jobId = await fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(spec);
        var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(120));

        Assert.True(status.State == JobState.Failed, $"job ended {status.State}: {status.FailureReason}");
        Assert.StartsWith($"step {badStep}: non-finite loss/gradient norm", status.FailureReason);
        Assert.Contains($"the last checkpoint is step {badStep - 1}", status.FailureReason);
        Assert.Equal(badStep - 1, status.Step);
        Assert.Equal(0, status.Recoveries); // failed at once: redoing the step from its checkpoint would only meet the NaN again
        Assert.Equal(badStep - 1, status.LastCheckpointStep);
        var listed = (await fixture.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List()).Select(c => c.Step).ToList();
        Assert.Contains(badStep - 1, listed);
        Assert.All(listed, step => Assert.True(step < badStep, $"checkpoint of step {step} written at or after the NaN step {badStep}"));
        var metrics = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, (int)badStep - 1).Select(s => (long)s), metrics.Select(m => m.Step));
    }

    /// <summary>The same job in process: the step whose update the worker refuses, with its replica left at the step before.</summary>
    private static long FirstNonFiniteStep(TrainingJobSpec spec)
    {
        var worker = CreateWorkers(spec)[0];
        try
        {
            for (long step = 1; step <= spec.Steps; step++)
            {
                var gradients = worker.ComputeGradients(step).Gradients;
                var before = worker.GetParameters();
                try
                {
                    worker.ApplyUpdate(step, gradients);
                }
                catch (NonFiniteTrainingException skipped)
                {
                    Assert.Equal(step, skipped.Step);
                    Assert.Equal(step - 1, worker.Step);
                    Assert.Equal(before, worker.GetParameters());
                    return step;
                }
            }
            return -1;
        }
        finally
        {
            worker.Dispose();
        }
    }
}
