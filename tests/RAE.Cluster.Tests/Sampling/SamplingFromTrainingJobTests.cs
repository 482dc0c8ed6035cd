using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using RAE.Client.Commands;
using RAE.GrainInterfaces;
using RAE.Grains.Sampling;
using RAE.Grains.Workers.Stage2;
using RAE.Configuration;

namespace RAE.Cluster.Tests.Sampling;

/// <summary>Sampling jobs that take their weights (and configuration) straight from a training job's committed checkpoint.</summary>
[Collection(ClusterCollection.Name)]
public sealed class SamplingFromTrainingJobTests(ClusterFixture fixture) : IDisposable
{
    /// <summary>The tiny dit-dh job with a 4-point Euler sampler in its configuration, so a sampling job may use the checkpoint's config as is.</summary>
    private static readonly string TrainingConfig = Stage2.DiTTestJobs.TinyConfig + """

        sampler:
          mode: ODE
          params:
            sampling_method: euler
            num_steps: 4
        """;

    private static readonly SemaphoreSlim TrainingLock = new(1, 1);
    private static (ClusterFixture Fixture, string JobId)? _trained;

    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rae-sample-source-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    /// <summary>A 2-step, 1-rank training job with checkpoints at steps 1 and 2, trained once per cluster.</summary>
    private async Task<string> TrainedJobAsync()
    {
        await TrainingLock.WaitAsync();
        try
        {
            if (_trained is { } done && done.Fixture == fixture) return done.JobId;
            var spec = TrainingJobSpecs.FromConfig(RaeConfig.Parse(TrainingConfig, "training test config"), ranks: 1) with { Steps = 2, CheckpointInterval = 1 };
            var jobId = await fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(spec);
            var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(120));
            Assert.True(status.State == JobState.Completed, $"training job ended {status.State}: {status.FailureReason}");
            _trained = (fixture, jobId);
            return jobId;
        }
        finally
        {
            TrainingLock.Release();
        }
    }

    private static SamplingJobSpec Spec(string? sourceJob, long? step) => new()
    {
        Workload = SamplingPlan.Workload,
        SourceTrainingJobId = sourceJob,
        SourceCheckpointStep = step,
        Samples = 6,
        UnitSize = 3,
        Classes = 10,
        Seed = 3,
        MaxWorkers = 1,
    };

    private async Task<(string JobId, SamplingJobStatus Status)> RunAsync(SamplingJobSpec spec)
    {
        var jobId = "sample-src-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Grains.GetGrain<ISamplingJobGrain>(jobId).Start(spec);
        var status = await SamplingTestFiles.WaitForEndAsync(fixture, jobId);
        Assert.True(status.State == JobState.Completed, $"sampling job {jobId} ended {status.State}: {status.FailureReason}");
        return (jobId, status);
    }

    private async Task<List<byte[]>> UnitBytesAsync(SamplingJobStatus status)
    {
        var blobs = SamplingTestFiles.Blobs(fixture);
        var units = new List<byte[]>();
        for (var unit = 0; unit < status.UnitsTotal; unit++) units.Add((await blobs.GetAsync($"{status.UnitsLocation}/{unit:D6}.safetensors")).Data);
        return units;
    }

    private async Task<CheckpointInfo> CheckpointAsync(string jobId, long step) => await fixture.Grains.GetGrain<ICheckpointStoreGrain>(jobId).Get(step);

    [Fact]
    public async Task SamplingATrainingJobsCheckpointGivesTheBytesOfSamplingItsExportedWeights()
    {
        var trainingJob = await TrainedJobAsync();
        using var loads = new WeightLoadCounter();

        // No exported file, no configuration and no class count: the EMA weights and config.yaml of step 1 come from the payload.
        var (fromJobId, fromJob) = await RunAsync(Spec(trainingJob, step: 1) with { Classes = 0 });
        Assert.Equal(1L, fromJob.Spec.SourceCheckpointStep);
        Assert.Equal(10, fromJob.Spec.Classes);
        Assert.Null(fromJob.ImagesLocation);
        Assert.Equal(2, fromJob.UnitsTotal);
        Assert.Equal(1, loads.Count(fromJobId)); // one worker, two units, one load
        var fromJobUnits = await UnitBytesAsync(fromJob);

        // The same worker samples the same checkpoint again for another job without loading it again (cached by checksum).
        var (againId, again) = await RunAsync(Spec(trainingJob, step: 1));
        Assert.Equal(0, loads.Count(againId));
        Assert.Equal(fromJobUnits, await UnitBytesAsync(again));

        var step1 = await CheckpointAsync(trainingJob, 1);
        var configYaml = CheckpointConfigReader.ReadConfigYaml(await fixture.CheckpointPayloads.ReadAsync(step1), step1.Location)!;
        Assert.Equal(4, RaeConfig.Parse(configYaml, "stored").Sampler.NumSteps);
        Directory.CreateDirectory(_folder);
        var emaFile = Path.Combine(_folder, "step1.ema.safetensors");
        await CheckpointsExportCommand.ExportAsync(fixture.Grains, step1, "ema", weightsExplicit: true, emaFile);
        var (_, fromFile) = await RunAsync(Spec(null, null) with { CheckpointPath = emaFile, Config = JobConfiguration.From(RaeConfig.Parse(configYaml, "stored")) });
        Assert.Equal(fromJobUnits, await UnitBytesAsync(fromFile));

        // No step: the latest checkpoint (2) is pinned; 'weights: model' samples the raw model, as its exported file does.
        var (_, latestModel) = await RunAsync(Spec(trainingJob, step: null) with { Weights = CheckpointWeights.Model });
        Assert.Equal(2L, latestModel.Spec.SourceCheckpointStep);
        var modelFile = Path.Combine(_folder, "step2.model.safetensors");
        await CheckpointsExportCommand.ExportAsync(fixture.Grains, await CheckpointAsync(trainingJob, 2), "model", weightsExplicit: true, modelFile);
        var (_, modelFromFile) = await RunAsync(Spec(null, null) with { CheckpointPath = modelFile, Config = JobConfiguration.From(RaeConfig.Parse(configYaml, "stored")) });
        var latestModelUnits = await UnitBytesAsync(latestModel);
        Assert.Equal(latestModelUnits, await UnitBytesAsync(modelFromFile));
        Assert.NotEqual(fromJobUnits, latestModelUnits);
    }

    [Fact]
    public async Task AResumedJobSamplesThePinnedCheckpointEvenAfterANewerOneWasCommitted()
    {
        var trainingJob = await TrainedJobAsync();
        // A catalog of our own, so committing a newer checkpoint does not change the trained job's "latest".
        var sourceJob = "train-pinned-" + Guid.NewGuid().ToString("N")[..8];
        var store = fixture.Grains.GetGrain<ICheckpointStoreGrain>(sourceJob);
        Directory.CreateDirectory(_folder);
        async Task<CheckpointInfo> CommitCopyAsync(long fromStep, long asStep)
        {
            var original = await CheckpointAsync(trainingJob, fromStep);
            var info = await fixture.CheckpointPayloads.WriteAsync(sourceJob, asStep, await fixture.CheckpointPayloads.ReadAsync(original), original.Loss);
            await store.Commit(info, CheckpointRetentionPolicy.KeepAll);
            return info;
        }
        await CommitCopyAsync(fromStep: 1, asStep: 1);

        var jobId = "sample-src-pin-" + Guid.NewGuid().ToString("N")[..8];
        var job = fixture.Grains.GetGrain<ISamplingJobGrain>(jobId);
        await job.Start(Spec(sourceJob, step: null) with { UnitSize = 2, UnitDelay = TimeSpan.FromMilliseconds(400) });
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while ((await job.GetStatus()).UnitsDone < 1)
        {
            Assert.True(DateTime.UtcNow < deadline, "no unit finished within 60 s");
            await Task.Delay(20);
        }
        await job.Cancel();
        Assert.InRange((await job.GetStatus()).UnitsDone, 1, 2);
        await CommitCopyAsync(fromStep: 2, asStep: 5);
        // A new activation reads the pinned checkpoint back from the persisted state.
        await job.Cast<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();
        await job.Resume();
        var resumed = await SamplingTestFiles.WaitForEndAsync(fixture, jobId);
        Assert.True(resumed.State == JobState.Completed, $"resumed job ended {resumed.State}: {resumed.FailureReason}");
        Assert.Equal(1L, resumed.Spec.SourceCheckpointStep);

        var (_, step1) = await RunAsync(Spec(trainingJob, step: 1) with { UnitSize = 2 });
        var (_, latest) = await RunAsync(Spec(sourceJob, step: null) with { UnitSize = 2 });
        Assert.Equal(5L, latest.Spec.SourceCheckpointStep);
        var resumedUnits = await UnitBytesAsync(resumed);
        Assert.Equal(await UnitBytesAsync(step1), resumedUnits);
        Assert.NotEqual(await UnitBytesAsync(latest), resumedUnits);
    }

    [Fact]
    public async Task AnUnknownSourceJobOrStepIsRefusedWithTheJobAndStepNamed()
    {
        var trainingJob = await TrainedJobAsync();
        var job = fixture.Grains.GetGrain<ISamplingJobGrain>("sample-src-bad-" + Guid.NewGuid().ToString("N")[..8]);

        var unknownJob = await Assert.ThrowsAsync<RaeJobException>(() => job.Start(Spec("train-does-not-exist", null)));
        Assert.Contains("'train-does-not-exist' is unknown", unknownJob.Message);

        var unknownStep = await Assert.ThrowsAsync<RaeJobException>(() => job.Start(Spec(trainingJob, 7)));
        Assert.Contains($"training job '{trainingJob}' has no committed checkpoint at step 7", unknownStep.Message);
        Assert.Contains("committed steps: [1, 2]", unknownStep.Message);

        var both = await Assert.ThrowsAsync<RaeJobException>(() => job.Start(Spec(trainingJob, 1) with { CheckpointPath = "/some/file.safetensors" }));
        Assert.Contains("not both", both.Message);

        var badPart = await Assert.ThrowsAsync<RaeJobException>(() => job.Start(Spec(trainingJob, 1) with { Weights = (CheckpointWeights)7 }));
        Assert.Contains("Weights must be Ema or Model, got 7", badPart.Message);

        // Nothing was started by the refused submissions.
        var never = await Assert.ThrowsAsync<RaeJobException>(() => job.GetStatus());
        Assert.Contains("never started", never.Message);
    }
}

/// <summary>Counts <c>rae.sampling.weight_loads</c> per job while it is alive.</summary>
internal sealed class WeightLoadCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, int> _counts = new();

    public WeightLoadCounter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == SamplingTelemetry.MeterName && instrument.Name == "rae.sampling.weight_loads")
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "job" && tag.Value is string job) _counts.AddOrUpdate(job, (int)value, (_, previous) => previous + (int)value);
        });
        _listener.Start();
    }

    public int Count(string job) => _counts.GetValueOrDefault(job);

    public void Dispose() => _listener.Dispose();
}
