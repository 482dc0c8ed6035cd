using RAE.GrainInterfaces;
using RAE.Grains.Workers;

namespace RAE.Cluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class TrainingTests(ClusterFixture fixture)
{
    private static TrainingJobSpec Spec(int ranks, int globalBatch = 16, int steps = 6, int accumulation = 1) => new()
    {
        Workload = TinyMlpWorker.WorkloadName,
        Ranks = ranks,
        GlobalBatchSize = globalBatch,
        GradientAccumulation = accumulation,
        Steps = steps,
        LearningRate = 0.02,
        WeightDecay = 0.01,
        GradientClip = 1.0,
        WarmupSteps = 2,
        Seed = 1234,
        CheckpointInterval = 2,
        CollectiveTimeout = TimeSpan.FromSeconds(20),
    };

    private IJobRegistryGrain Registry => fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task TwoRanksWithBatchBGiveTheParametersOfOneRankWithBatchTwoB()
    {
        var oneRank = await TrainAsync(Spec(ranks: 1));
        var twoRanks = await TrainAsync(Spec(ranks: 2));
        var accumulated = await TrainAsync(Spec(ranks: 2, accumulation: 2));
        var initial = InitialParameters(Spec(ranks: 1));

        var scale = oneRank.Max(MathF.Abs);
        Assert.True(MaxDifference(oneRank, initial) / scale > 1e-2, "training must move the parameters, or the comparison proves nothing");
        Assert.True(MaxDifference(oneRank, twoRanks) / scale < 1e-5, $"2 ranks differ from 1 rank by {MaxDifference(oneRank, twoRanks) / scale:E2} relative");
        Assert.True(MaxDifference(oneRank, accumulated) / scale < 1e-5, $"2 ranks x 2 accumulated micro-batches differ from 1 rank by {MaxDifference(oneRank, accumulated) / scale:E2} relative");
    }

    [Fact]
    public async Task JobRunsToCompletionOnTwoSilosAndRecordsItsMetrics()
    {
        var jobId = await Registry.SubmitTraining(Spec(ranks: 2));
        var status = await fixture.WaitForEndAsync(jobId);

        Assert.Equal(JobState.Completed, status.State);
        Assert.Null(status.FailureReason);
        Assert.Equal(6, status.Step);
        Assert.Equal(2, status.Ranks.Count);
        Assert.Equal(2, status.Ranks.Select(r => r.SiloAddress).Distinct().Count());
        Assert.Equal(6, status.LastCheckpointStep);

        var metrics = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, 6).Select(s => (long)s), metrics.Select(m => m.Step));
        Assert.All(metrics, m =>
        {
            Assert.True(double.IsFinite(m.Loss) && m.Loss > 0);
            Assert.True(m.StepSeconds > 0);
            Assert.Equal(2, m.SamplesPerSecondPerRank.Count);
            Assert.All(m.SamplesPerSecondPerRank, rate => Assert.True(rate > 0));
        });
        Assert.Equal(0.01, metrics[0].LearningRate, 12); // warm-up: step 1 of 2
        Assert.Equal(0.02, metrics[^1].LearningRate, 12);
        Assert.True(metrics[^1].Loss < metrics[0].Loss, $"loss should fall: {metrics[0].Loss} -> {metrics[^1].Loss}");

        var checkpoints = await fixture.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List();
        Assert.Equal([2L, 4L, 6L], checkpoints.Select(c => c.Step));
        foreach (var c in checkpoints)
            Assert.Equal(c.SizeBytes, (await fixture.CheckpointPayloads.ReadAsync(c)).LongLength);

        // The job's last loss is published on the Orleans meter, where the dashboard's silo counters read it.
        var published = new List<(double Value, string? Job)>();
        using (var listener = new System.Diagnostics.Metrics.MeterListener())
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Microsoft.Orleans" && instrument.Name == RAE.Grains.Training.SiloTrainingMetrics.LossInstrument) l.EnableMeasurementEvents(instrument);
            };
            listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
            {
                foreach (var tag in tags) if (tag.Key == "job") published.Add((value, tag.Value as string));
            });
            listener.Start();
            listener.RecordObservableInstruments();
        }
        Assert.Contains(published, p => p.Job == jobId && p.Value == metrics[^1].Loss);

        var summary = await Registry.Get(jobId);
        Assert.Equal(JobState.Completed, summary.State);
        Assert.Equal(6, summary.Progress);
        Assert.Contains(await Registry.List(), j => j.JobId == jobId);
    }

    [Fact]
    public async Task ShortStepsRunInWindowsThatStopAtEveryCheckpointAndRecordEveryStep()
    {
        var windowed = Spec(ranks: 2, steps: 40) with { CheckpointInterval = 15 };
        var jobId = await Registry.SubmitTraining(windowed);
        var status = await fixture.WaitForEndAsync(jobId);
        Assert.True(status.State == JobState.Completed, $"job {jobId} ended {status.State}: {status.FailureReason}");

        var metrics = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, 40).Select(s => (long)s), metrics.Select(m => m.Step));
        Assert.Equal(1, metrics[0].StepsPerCall); // the first step is timed alone
        Assert.Contains(metrics, m => m.StepsPerCall > 1);
        Assert.All(metrics, m => Assert.True(m.StepSeconds > 0 && double.IsFinite(m.Loss), $"step {m.Step}: {m.StepSeconds} s, loss {m.Loss}"));
        var checkpoints = await fixture.Grains.GetGrain<ICheckpointStoreGrain>(jobId).List();
        Assert.Equal([15L, 30L, 40L], checkpoints.Select(c => c.Step));

        // Step 15's checkpoint holds the replica after step 15 exactly, as a job that ends there: no window ran past it.
        var (shorterJob, shorter) = await TrainWithIdAsync(windowed with { Steps = 15 });
        Assert.Equal(shorter, await ParametersOf(checkpoints[0], windowed));
        var shorterLosses = (await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(shorterJob).GetMetrics(0)).Select(m => m.Loss);
        Assert.Equal(shorterLosses, metrics.Take(15).Select(m => m.Loss));
    }

    [Fact]
    public async Task SameJobTwiceGivesTheSameLossCurve()
    {
        var first = await Registry.SubmitTraining(Spec(ranks: 2, steps: 4));
        var second = await Registry.SubmitTraining(Spec(ranks: 2, steps: 4));
        await fixture.WaitForEndAsync(first);
        await fixture.WaitForEndAsync(second);
        var firstLosses = (await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(first).GetMetrics(0)).Select(m => m.Loss);
        var secondLosses = (await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(second).GetMetrics(0)).Select(m => m.Loss);
        Assert.Equal(firstLosses, secondLosses);
    }

    [Fact]
    public async Task UnknownJobIdGivesAClearError()
    {
        var registryError = await Assert.ThrowsAsync<RaeJobException>(() => Registry.Get("train-no-such-job"));
        Assert.Contains("'train-no-such-job' is unknown", registryError.Message);
        var coordinatorError = await Assert.ThrowsAsync<RaeJobException>(() => fixture.Grains.GetGrain<ITrainingCoordinatorGrain>("train-missing").GetStatus());
        Assert.Contains("'train-missing' is unknown", coordinatorError.Message);
        await Assert.ThrowsAsync<RaeJobException>(() => Registry.Cancel("train-no-such-job"));
    }

    [Fact]
    public async Task BadSpecsAreRejectedWithTheFieldNamed()
    {
        var jobsBefore = (await Registry.List()).Count;
        var zeroRanks = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitTraining(Spec(ranks: 0)));
        Assert.Contains("Ranks must be at least 1, got 0", zeroRanks.Message);
        var indivisible = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitTraining(Spec(ranks: 3, globalBatch: 16)));
        Assert.Contains("GlobalBatchSize 16 is not a multiple of Ranks x GradientAccumulation = 3", indivisible.Message);
        var unknownWorkload = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitTraining(Spec(ranks: 1) with { Workload = "no-such-model" }));
        Assert.Contains("Workload 'no-such-model' is unknown", unknownWorkload.Message);
        Assert.Equal(jobsBefore, (await Registry.List()).Count);
    }

    [Fact]
    public async Task CancelledJobStopsBeforeItsLastStep()
    {
        var jobId = await Registry.SubmitTraining(Spec(ranks: 1, steps: 100_000) with { CheckpointInterval = 0 });
        await Task.Delay(300);
        await Registry.Cancel(jobId);
        var status = await fixture.WaitForEndAsync(jobId);
        Assert.Equal(JobState.Cancelled, status.State);
        Assert.True(status.Step < 100_000);
    }

    private async Task<float[]> TrainAsync(TrainingJobSpec spec) => (await TrainWithIdAsync(spec)).Parameters;

    private async Task<(string JobId, float[] Parameters)> TrainWithIdAsync(TrainingJobSpec spec)
    {
        var jobId = await Registry.SubmitTraining(spec);
        var status = await fixture.WaitForEndAsync(jobId);
        Assert.True(status.State == JobState.Completed, $"job {jobId} ended {status.State}: {status.FailureReason}");
        Assert.Equal(spec.Ranks, status.Ranks.Count);
        var checkpoint = await fixture.Grains.GetGrain<ICheckpointStoreGrain>(jobId).Latest();
        Assert.NotNull(checkpoint);
        Assert.Equal(spec.Steps, checkpoint.Step);
        return (jobId, await ParametersOf(checkpoint, spec));
    }

    private async Task<float[]> ParametersOf(CheckpointInfo checkpoint, TrainingJobSpec spec)
    {
        using var worker = new TinyMlpWorker();
        worker.Initialize(new RankWorkerContext(spec, 0, 1, "cpu", 1));
        worker.LoadState(await fixture.CheckpointPayloads.ReadAsync(checkpoint));
        return worker.GetParameters();
    }

    private static float[] InitialParameters(TrainingJobSpec spec)
    {
        using var worker = new TinyMlpWorker();
        worker.Initialize(new RankWorkerContext(spec, 0, 1, "cpu", 1));
        return worker.GetParameters();
    }

    private static float MaxDifference(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        return a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
    }
}
