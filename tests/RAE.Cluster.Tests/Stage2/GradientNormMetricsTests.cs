using RAE.GrainInterfaces;
using static RAE.Cluster.Tests.Stage2.DiTTestJobs;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>The pre-clip global gradient norm travels from the dit-dh worker through the rank grain into <see cref="StepMetrics"/>.</summary>
[Collection(ClusterCollection.Name)]
public sealed class GradientNormMetricsTests(ClusterFixture fixture)
{
    private const int Steps = 3;

    [Fact]
    public async Task StepMetricsCarryThePreClipGradientNormOfEachOneRankStep()
    {
        // clip_grad 0.01 is far below the tiny model's gradient norm, so a clipped norm could never match the direct one.
        var spec = Spec(ranks: 1, steps: Steps, overrides: "training.clip_grad=0.01");
        Assert.Equal(0.01, spec.GradientClip, 12);
        var jobId = await fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(spec);
        var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(120));
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        var metrics = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetMetrics(0);
        Assert.Equal(Steps, metrics.Count);
        Assert.Equal(metrics[^1].GradientNorm, status.LastMetrics!.GradientNorm);

        // The same steps in process: the norm of the gradient vector that goes into the update, computed directly.
        var worker = CreateWorkers(spec)[0];
        try
        {
            for (var step = 1; step <= Steps; step++)
            {
                var gradients = worker.ComputeGradients(step).Gradients;
                var direct = Math.Sqrt(gradients.Sum(g => (double)g * g));
                worker.ApplyUpdate(step, gradients);
                var reported = metrics[step - 1].GradientNorm;
                Assert.True(reported > spec.GradientClip, $"step {step}: norm {reported} must be the pre-clip norm (clip is {spec.GradientClip})");
                Assert.True(Math.Abs(reported - direct) <= 1e-5 * direct, $"step {step}: reported norm {reported}, direct norm {direct}");
            }
        }
        finally
        {
            worker.Dispose();
        }
    }
}
