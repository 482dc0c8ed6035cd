using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// A training coordinator's activation that goes away while its job runs (its silo stops gracefully, or it is asked to
/// go) stops its step loop before the next activation resumes the job: no second loop drives the same ranks, and the
/// old one's end never releases the devices the new one uses. The old activation is caught in the step-8 checkpoint
/// (its metrics segment put is held), so without the stop the resumed job runs beside it until the put is let go.
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class CoordinatorDeactivationTests(FileSystemStorageCluster cluster)
{
    private static readonly TimeSpan ResumeWindow = TimeSpan.FromSeconds(8);

    private static bool IsStep8SegmentOfFirstGroup(string path) =>
        path.Contains("/metrics/segment-g000001-", StringComparison.Ordinal) && path.EndsWith("-000000000008.jsonl", StringComparison.Ordinal);

    [Fact]
    public async Task ADeactivatedCoordinatorStopsItsRunAndTheResumedJobEndsAsAnUndisturbedOne()
    {
        var registry = cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var spec = TornCheckpointWriteTests.Spec(steps: 12, interval: 4) with { TinyMlp = new TinyMlpOptions { StepDelay = TimeSpan.FromMilliseconds(50) } };
        using var heldSegment = cluster.Store.HoldThenFailPut(IsStep8SegmentOfFirstGroup);
        var jobId = await registry.SubmitTraining(spec);
        var coordinator = cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        await heldSegment.Held.WaitAsync(TimeSpan.FromSeconds(60));

        await coordinator.Cast<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();
        // The silo's resume service asks every 3 s; a second activation must not run the job while the first one's
        // loop is still in its checkpoint (it waits for that loop to stop).
        var resumedBeside = await RecoveredWithinAsync(coordinator, ResumeWindow);
        heldSegment.Release();
        var status = await cluster.WaitForEndAsync(jobId);

        Assert.False(resumedBeside, "a second activation resumed the job while the first one's run was still going");
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(1, status.Recoveries);
        Assert.Equal(4, status.RestoredFromStep);
        Assert.Equal(0, status.FailedAttempts);

        var undisturbed = await registry.SubmitTraining(spec);
        Assert.Equal(JobState.Completed, (await cluster.WaitForEndAsync(undisturbed)).State);
        var expectedCurve = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(undisturbed).GetMetrics(0);
        var curve = await coordinator.GetMetrics(0);
        Assert.Equal(expectedCurve.Select(m => (m.Step, m.Loss, m.LearningRate)), curve.Select(m => (m.Step, m.Loss, m.LearningRate)));
        var expected = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(undisturbed).Latest();
        var actual = await cluster.Grains.GetGrain<ICheckpointStoreGrain>(jobId).Latest();
        Assert.Equal(TornCheckpointWriteTests.Parameters(spec, await cluster.Payloads.ReadAsync(expected!)),
            TornCheckpointWriteTests.Parameters(spec, await cluster.Payloads.ReadAsync(actual!)));
    }

    /// <summary>Whether, within <paramref name="window"/>, a status answer shows the group re-formed (a resumed run);
    /// status calls that wait for the old activation to finish going count as no answer.</summary>
    private static async Task<bool> RecoveredWithinAsync(ITrainingCoordinatorGrain coordinator, TimeSpan window)
    {
        var deadline = DateTime.UtcNow + window;
        while (DateTime.UtcNow < deadline)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) break;
            try
            {
                if ((await coordinator.GetStatus().WaitAsync(left)).Recoveries > 0) return true;
            }
            catch (Exception error) when (error is not Xunit.Sdk.XunitException)
            {
                // No answer in time, or the call was turned away while the old activation goes: keep asking.
            }
            await Task.Delay(100);
        }
        return false;
    }
}
