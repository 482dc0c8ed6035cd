using RAE.Client.Cluster;
using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Evaluation;

[CollectionDefinition(Name)]
public sealed class EvaluationFailoverCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "three-silo cluster that loses a silo during an evaluation";
}

/// <summary>A silo is killed while an evaluation job runs: the job ends with the same score, and no unit recorded as finished is computed again.</summary>
[Collection(EvaluationFailoverCollection.Name)]
public sealed class EvaluationFailoverTests(ClusterFixture fixture)
{
    [Fact]
    public async Task KillingASiloMidJobRecomputesNoFinishedUnitAndGivesTheDirectScore()
    {
        using var samples = EvaluationTestData.Images(8, 8, seed: 1);
        using var reference = EvaluationTestData.Images(8, 8, seed: 2);
        var folder = Path.Combine(fixture.DataFolder, "eval-failover");
        var samplesBlob = await EvaluationTransfers.UploadAsync(fixture.Grains, EvaluationTestData.WriteNpz(folder, "samples.npz", samples));
        var referenceBlob = await EvaluationTransfers.UploadAsync(fixture.Grains, EvaluationTestData.WriteNpz(folder, "reference.npz", reference));
        using var executions = new EvaluationUnitCounter();
        var jobId = "eval-failover-" + Guid.NewGuid().ToString("N")[..8];
        var job = fixture.Grains.GetGrain<IEvaluationJobGrain>(jobId);
        await job.Start(new EvaluationJobSpec
        {
            Samples = new EvaluationInput(EvaluationInputKind.NpzBlob, samplesBlob),
            Reference = new EvaluationInput(EvaluationInputKind.NpzBlob, referenceBlob),
            UnitSize = 1,
            BatchSize = 1,
            UnitDelay = TimeSpan.FromMilliseconds(400),
        });

        EvaluationJobStatus running;
        do
        {
            await Task.Delay(50);
            running = await job.GetStatus();
        } while (running.UnitsDone < 4 && running.State is JobState.Pending or JobState.Running);
        Assert.Equal(JobState.Running, running.State);
        var primary = fixture.Cluster.Primary!.SiloAddress;
        var silos = fixture.Cluster.GetActiveSilos().Where(s => !s.SiloAddress.Equals(primary)).ToList();
        // The job's own silo when it is not the primary (the test cluster cannot lose its primary), else a worker's.
        var victim = silos.FirstOrDefault(s => s.SiloAddress.ToParsableString() == running.Silo) ?? silos[0];
        var finishedBeforeKill = (await job.GetStatus()).FinishedUnits;
        await fixture.Cluster.KillSiloAsync(victim);

        var status = await EvaluationTestData.WaitForEndAsync(fixture.Grains, jobId, TimeSpan.FromSeconds(150));

        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(16, status.UnitsTotal);
        Assert.All(finishedBeforeKill, unit => Assert.Equal(1, executions.Count(jobId, unit)));
        Assert.All(Enumerable.Range(0, 16), unit => Assert.InRange(executions.Count(jobId, unit), 1, 2));
        var expected = EvaluationTestData.DirectFdResNet18(samples, reference, batchSize: 1);
        Assert.Equal("fd_resnet18", status.Result!.Metric);
        Assert.True(Math.Abs(status.Result.Value - expected) <= 1e-12 * Math.Max(1, Math.Abs(expected)), $"cluster {status.Result.Value:R}, direct {expected:R}");
    }
}
