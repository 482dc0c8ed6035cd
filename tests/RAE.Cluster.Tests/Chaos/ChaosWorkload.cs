using System.Security.Cryptography;
using RAE.Client.Cluster;
using RAE.Cluster.Tests.EncodeJobs;
using RAE.Cluster.Tests.Failover;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Sampling;
using RAE.Grains.Storage;
using RAE.Models.Data;
using Xunit.Abstractions;

namespace RAE.Cluster.Tests.Chaos;

internal sealed record TrainingOutcome(string JobId, TrainingJobStatus Status, IReadOnlyList<StepMetrics> Metrics, IReadOnlyList<CheckpointInfo> Checkpoints);

internal sealed record EncodeOutcome(string JobId, EncodeJobStatus Status);

internal sealed record SamplingOutcome(string JobId, SamplingJobStatus Status);

/// <summary>A sampling job pinned to an early checkpoint of a running training job, and what its watch saw: the newest
/// step the source catalog listed while it ran (past the pinned step's retention, the pin was tested) and every moment
/// the pinned checkpoint was missing from the catalog or its blob.</summary>
internal sealed record PinnedSamplingOutcome(string JobId, SamplingJobStatus Status, string SourceJobId, long NewestSourceStepSeen, IReadOnlyList<string> PinViolations);

/// <summary>
/// The three jobs the chaos suite keeps running (a tiny 2-rank DiT^DH training job, an encode job over a tiny image
/// dataset, a sampling job from a trained checkpoint) and what an undisturbed run of each gives: every job run under
/// chaos is compared with those bit for bit.
/// </summary>
internal sealed partial class ChaosWorkload(AzureSiloProcessCluster cluster, IBlobStore blobs, ChaosCounters counters, ITestOutputHelper log)
{
    public const int TrainingSteps = 24;
    public const int CheckpointInterval = 4;
    private const int Samples = 12;
    private const int UnitSize = 2;
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(8);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(45);

    /// <summary>The tiny DiT^DH of the DiT tests with a 4-point Euler sampler, so sampling can use the checkpoint's own config.</summary>
    private static readonly string TrainingConfig = Stage2.DiTTestJobs.TinyConfig + """

        sampler:
          mode: ODE
          params:
            sampling_method: euler
            num_steps: 4
        """;

    private RaeClient Client => cluster.Client;

    public TrainingJobSpec TrainingSpec { get; } = TrainingJobSpecs.FromConfig(RaeConfig.Parse(TrainingConfig, "chaos training config"), ranks: 2) with
    {
        Steps = TrainingSteps,
        CheckpointInterval = CheckpointInterval,
        // Generous: a loaded 2-core machine can stall a rank for seconds; a dead peer is found by membership sooner.
        CollectiveTimeout = TimeSpan.FromSeconds(30),
    };

    private string _dataset = "";
    private TrainingOutcome _referenceTraining = null!;
    private byte[] _referenceFinalCheckpoint = [];
    private IReadOnlyList<byte[]> _referenceUnits = [];
    private byte[]? _referenceSamplingOutput;
    private IReadOnlyList<byte[]> _referenceLatents = [];

    /// <summary>Uploads the dataset and runs the undisturbed references (before any chaos).</summary>
    public async Task PrepareAsync()
    {
        _dataset = await EncodeTestData.AddDatasetAsync(Client.Grains, "chaos", classes: 3, perClass: 8, shardSize: 4);
        _referenceLatents = await EncodeTestData.EncodeDirectlyAsync(blobs, _dataset, new ShardEncoderOptions(EncodeTestData.EncoderInputSize, EncodeTestData.Spec(_dataset, "x").BatchSize));

        // The undisturbed pinned sampling runs beside the undisturbed training it samples from, as under chaos.
        var referenceTrainingId = await SubmitTrainingAsync(0);
        var pinned = RunPinnedSamplingAsync(referenceTrainingId, 0);
        _referenceTraining = await WaitForTrainingAsync(referenceTrainingId, 0);
        Assert.True(_referenceTraining.Status.State == JobState.Completed, "undisturbed training: " + Describe(_referenceTraining.Status));
        var pinnedReference = await pinned
            ?? throw new Xunit.Sdk.XunitException($"the undisturbed pinned sampling missed step {PinnedStep} of training job {referenceTrainingId}");
        VerifyPins(pinnedReference);
        _referencePinnedUnits = await UnitBytesAsync(pinnedReference.Status);
        _referenceFinalCheckpoint = (await blobs.GetAsync(_referenceTraining.Checkpoints[^1].Location)).Data;

        var sampling = await RunSamplingAsync(0);
        Assert.True(sampling.Status.State == JobState.Completed, "undisturbed sampling: " + Describe(sampling.Status));
        _referenceUnits = await UnitBytesAsync(sampling.Status);
        _referenceSamplingOutput = await DecodedOutputAsync(sampling.Status);
        log.WriteLine($"references: training {_referenceTraining.JobId} ({TrainingSteps} steps), sampling {sampling.JobId} ({_referenceUnits.Count} units), "
            + $"{_referenceLatents.Count} latent shards of dataset {_dataset}, pinned sampling {pinnedReference.JobId} (step {PinnedStep}, source at step {pinnedReference.NewestSourceStepSeen} meanwhile)");
    }

    public async Task<TrainingOutcome> RunTrainingAsync(int wave) => await WaitForTrainingAsync(await SubmitTrainingAsync(wave), wave);

    private async Task<string> SubmitTrainingAsync(int wave)
    {
        var jobId = await SubmitAsync(() => Client.SubmitTrainingAsync(TrainingSpec));
        log.WriteLine($"wave {wave}: training job {jobId} submitted");
        CurrentTrainingJobId = jobId;
        return jobId;
    }

    private async Task<TrainingOutcome> WaitForTrainingAsync(string jobId, int wave)
    {
        var status = await WaitForEndAsync(() => Client.GetTrainingStatusAsync(jobId), s => IsEnded(s.State), Describe, $"training job {jobId}");
        var metrics = await CallAsync(() => Client.GetMetricsAsync(jobId, 0));
        var checkpoints = await CallAsync(() => Client.ListCheckpointsAsync(jobId));
        log.WriteLine($"wave {wave}: training job {jobId} ended: {Describe(status)}");
        return new TrainingOutcome(jobId, status, metrics, checkpoints);
    }

    public async Task<EncodeOutcome> RunEncodeAsync(int wave)
    {
        // A new latent name per attempt: a name that holds an unfinished job's files is refused.
        var spec = EncodeTestData.Spec(_dataset, "x") with { ShardDelay = TimeSpan.FromMilliseconds(300) };
        var jobId = await SubmitAsync(() => Client.SubmitEncodingAsync(spec with { LatentName = $"chaos-{wave}-{Guid.NewGuid().ToString("N")[..6]}" }));
        log.WriteLine($"wave {wave}: encode job {jobId} submitted");
        var status = await WaitForEndAsync(() => Client.GetEncodeStatusAsync(jobId), s => IsEnded(s.State), Describe, $"encode job {jobId}");
        log.WriteLine($"wave {wave}: encode job {jobId} ended: {Describe(status)}");
        return new EncodeOutcome(jobId, status);
    }

    public async Task<SamplingOutcome> RunSamplingAsync(int wave)
    {
        var jobId = $"sample-chaos-{wave}-{Guid.NewGuid().ToString("N")[..8]}";
        var spec = new SamplingJobSpec
        {
            Workload = SamplingPlan.Workload,
            SourceTrainingJobId = _referenceTraining.JobId,
            Samples = Samples,
            UnitSize = UnitSize,
            Classes = 10,
            Seed = 5,
            UnitDelay = wave == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(300),
        };
        // The same id on a retry: a start that reached the grain before the call failed is not started twice.
        await SubmitAsync(async () =>
        {
            try
            {
                return await Client.StartSamplingAsync(spec, jobId);
            }
            catch (RaeJobException started) when (started.Message.Contains("already started", StringComparison.Ordinal))
            {
                return jobId;
            }
        });
        log.WriteLine($"wave {wave}: sampling job {jobId} started");
        var status = await WaitForEndAsync(() => Client.GetSamplingStatusAsync(jobId), s => IsEnded(s.State), Describe, $"sampling job {jobId}");
        log.WriteLine($"wave {wave}: sampling job {jobId} ended: {Describe(status)}");
        return new SamplingOutcome(jobId, status);
    }

    /// <summary>Every step once, the losses and learning rates of the undisturbed run bit for bit, every committed checkpoint intact.</summary>
    public async Task VerifyAsync(TrainingOutcome outcome)
    {
        var context = $"training job {outcome.JobId}: {Describe(outcome.Status)}";
        Assert.True(outcome.Status.State == JobState.Completed, context);
        Assert.All(outcome.Metrics, m => Assert.True(double.IsFinite(m.Loss), $"{context}: step {m.Step} has loss {m.Loss}"));
        Assert.Equal(Enumerable.Range(1, TrainingSteps).Select(s => (long)s), outcome.Metrics.Select(m => m.Step));
        var reference = _referenceTraining.Metrics;
        for (var i = 0; i < TrainingSteps; i++)
        {
            var (expected, actual) = (reference[i], outcome.Metrics[i]);
            Assert.True(BitConverter.DoubleToInt64Bits(expected.Loss) == BitConverter.DoubleToInt64Bits(actual.Loss)
                && BitConverter.DoubleToInt64Bits(expected.LearningRate) == BitConverter.DoubleToInt64Bits(actual.LearningRate),
                $"{context}: step {actual.Step} loss {actual.Loss:R} lr {actual.LearningRate:R} on {actual.Ranks} rank(s), "
                + $"the undisturbed run had {expected.Loss:R} / {expected.LearningRate:R} on {expected.Ranks}");
        }
        await VerifyCheckpointsAsync(outcome, context);
    }

    private async Task VerifyCheckpointsAsync(TrainingOutcome outcome, string context)
    {
        // Default retention keeps the newest 3; none may be missing, none torn. Read now that every job ended: a pinned
        // sampling job may have held an older one when the training job ended, and its end lets retention take it.
        var checkpoints = await CallAsync(() => Client.ListCheckpointsAsync(outcome.JobId));
        var expectedSteps = new long[] { TrainingSteps - 2 * CheckpointInterval, TrainingSteps - CheckpointInterval, TrainingSteps };
        Assert.True(expectedSteps.SequenceEqual(checkpoints.Select(c => c.Step)),
            $"{context}: catalog lists steps [{string.Join(", ", checkpoints.Select(c => c.Step))}] (when the job ended: [{string.Join(", ", outcome.Checkpoints.Select(c => c.Step))}]), expected [{string.Join(", ", expectedSteps)}]");
        foreach (var checkpoint in checkpoints)
        {
            Assert.StartsWith(BlobCheckpointPayloadStore.PrefixOf(outcome.JobId), checkpoint.Location, StringComparison.Ordinal);
            var payload = (await blobs.GetAsync(checkpoint.Location)).Data;
            Assert.True(payload.Length == checkpoint.SizeBytes, $"{context}: checkpoint {checkpoint.Location} holds {payload.Length} bytes, the catalog says {checkpoint.SizeBytes}");
            Assert.True(Convert.ToHexStringLower(SHA256.HashData(payload)) == checkpoint.Sha256.ToLowerInvariant(),
                $"{context}: checkpoint {checkpoint.Location} fails its catalog checksum");
            if (checkpoint.Step == TrainingSteps)
                Assert.True(payload.AsSpan().SequenceEqual(_referenceFinalCheckpoint), $"{context}: the final checkpoint differs from the undisturbed run's");
        }
    }

    /// <summary>Every image shard encoded once, in order, with the bytes of an in-process encode.</summary>
    public async Task VerifyAsync(EncodeOutcome outcome)
    {
        var context = $"encode job {outcome.JobId}: {Describe(outcome.Status)}";
        Assert.True(outcome.Status.State == JobState.Completed, context);
        var name = outcome.Status.Spec.LatentName;
        var manifest = LatentDatasetManifest.FromJson(System.Text.Encoding.UTF8.GetString((await blobs.GetAsync(outcome.Status.OutputLocation!)).Data), name);
        var imageShards = Enumerable.Range(0, _referenceLatents.Count).Select(i => $"shard-{i:D5}.bin").ToList();
        Assert.Equal(imageShards, manifest.Shards.Select(s => s.SourceShard));
        var stored = new List<string>();
        await foreach (var blob in blobs.ListAsync($"latents/{name}/shard-")) stored.Add(blob.Path.Split('/')[^1]);
        Assert.Equal(imageShards.Select(s => s.Replace(".bin", ".safetensors", StringComparison.Ordinal)), stored.Order(StringComparer.Ordinal));
        for (var i = 0; i < manifest.Shards.Count; i++)
        {
            var bytes = (await blobs.GetAsync($"latents/{name}/{manifest.Shards[i].File}")).Data;
            Assert.True(_referenceLatents[i].AsSpan().SequenceEqual(bytes), $"{context}: latent shard {i} differs from the in-process encode");
        }
    }

    /// <summary>Every unit once, with the bytes of the undisturbed sampling job.</summary>
    public async Task VerifyAsync(SamplingOutcome outcome)
    {
        var context = $"sampling job {outcome.JobId}: {Describe(outcome.Status)}";
        Assert.True(outcome.Status.State == JobState.Completed, context);
        var stored = new List<string>();
        await foreach (var blob in blobs.ListAsync(outcome.Status.UnitsLocation + "/")) stored.Add(blob.Path.Split('/')[^1]);
        Assert.Equal(Enumerable.Range(0, _referenceUnits.Count).Select(u => $"{u:D6}.safetensors"), stored.Order(StringComparer.Ordinal));
        var units = await UnitBytesAsync(outcome.Status);
        for (var u = 0; u < units.Count; u++)
            Assert.True(units[u].AsSpan().SequenceEqual(_referenceUnits[u]), $"{context}: unit {u} differs from the undisturbed run's");
        if (_referenceSamplingOutput is not null)
            Assert.True((await DecodedOutputAsync(outcome.Status))!.AsSpan().SequenceEqual(_referenceSamplingOutput), $"{context}: the .npz differs");
    }

    /// <summary>The FID .npz of a job that decodes its samples; null when the output is the units folder itself.</summary>
    private async Task<byte[]?> DecodedOutputAsync(SamplingJobStatus status) =>
        status.OutputLocation is { } output && output != status.UnitsLocation ? (await blobs.GetAsync(output)).Data : null;

    private async Task<List<byte[]>> UnitBytesAsync(SamplingJobStatus status)
    {
        var units = new List<byte[]>();
        for (var unit = 0; unit < status.UnitsTotal; unit++) units.Add((await blobs.GetAsync($"{status.UnitsLocation}/{unit:D6}.safetensors")).Data);
        return units;
    }

    /// <summary>A submission that fails (its grain's silo just died, storage frozen) is tried again, up to 10 times.</summary>
    private async Task<string> SubmitAsync(Func<Task<string>> submit)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await submit().WaitAsync(CallTimeout);
            }
            catch (Exception error) when (attempt < 10 && error is not (OutOfMemoryException or Xunit.Sdk.XunitException))
            {
                counters.ClientRetry();
                // Unavailable silos and timeouts are what chaos causes; anything else is shown whole, with its stack.
                var detail = error is Orleans.Runtime.SiloUnavailableException or TimeoutException or Orleans.Runtime.OrleansMessageRejectionException
                    ? $"{error.GetType().Name}: {error.Message}" : error.ToString();
                log.WriteLine($"submission attempt {attempt} failed ({detail}); retrying");
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
        }
    }

    private async Task<T> CallAsync<T>(Func<Task<T>> call)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call().WaitAsync(CallTimeout);
            }
            catch (Exception error) when (attempt < 10 && error is not OutOfMemoryException)
            {
                counters.ClientRetry();
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }
    }

    /// <summary>Polls every 250 ms; a call that fails or hangs (its silo just died) counts as a client retry.</summary>
    private async Task<T> WaitForEndAsync<T>(Func<Task<T>> read, Func<T, bool> ended, Func<T, string> describe, string what)
    {
        var deadline = DateTime.UtcNow + JobTimeout;
        var last = "no answer yet";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var value = await read().WaitAsync(CallTimeout);
                if (ended(value)) return value;
                last = describe(value);
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                counters.ClientRetry();
                last = $"{error.GetType().Name}: {error.Message}";
            }
            await Task.Delay(250);
        }
        throw new TimeoutException($"{what} did not end within {JobTimeout.TotalMinutes:0} min; last: {last}");
    }

    private static bool IsEnded(JobState state) => state is JobState.Completed or JobState.Failed or JobState.Cancelled;

    public static string Describe(TrainingJobStatus s) =>
        $"{s.State} at step {s.Step}, checkpoint {s.LastCheckpointStep}, recoveries {s.Recoveries}, restored from {s.RestoredFromStep}, "
        + $"failed attempts {s.FailedAttempts}{(s.LastError is null ? "" : $" (last error: {s.LastError})")}{(s.FailureReason is null ? "" : $", failure: {s.FailureReason}")}";

    public static string Describe(EncodeJobStatus s) =>
        $"{s.State} {s.ShardsDone}/{s.ShardsTotal} shards, resumptions {s.Resumptions}{(s.FailureReason is null ? "" : ": " + s.FailureReason)}";

    public static string Describe(SamplingJobStatus s) =>
        $"{s.State} {s.UnitsDone}/{s.UnitsTotal} units, resumptions {s.Resumptions}{(s.FailureReason is null ? "" : ": " + s.FailureReason)}";
}
