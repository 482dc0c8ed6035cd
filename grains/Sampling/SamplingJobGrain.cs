using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;
using RAE.Grains.Jobs;
using RAE.Grains.Placement;
using RAE.Grains.Checkpoints;
using RAE.Grains.Storage;

namespace RAE.Grains.Sampling;

[GenerateSerializer]
public sealed class SamplingJobState : IUnitJobState
{
    bool IUnitJobState.Started => Spec is not null;

    [Id(0)] public SamplingJobSpec? Spec { get; set; }
    [Id(1)] public JobState State { get; set; }
    /// <summary>Finished units and where their results are; written after every unit, so a finished unit is never redone.</summary>
    [Id(2)] public SortedDictionary<int, string> UnitsDone { get; set; } = [];
    [Id(3)] public string? FailureReason { get; set; }
    [Id(4)] public string? NpzLocation { get; set; }
    [Id(5)] public DateTimeOffset CreatedAt { get; set; }
    [Id(6)] public DateTimeOffset UpdatedAt { get; set; }
    /// <summary>How many activations found the job unfinished and continued it.</summary>
    [Id(7)] public int Resumptions { get; set; }
    /// <summary>The training checkpoint resolved at start (step, location, SHA-256, stored config); a resumed job samples exactly it.</summary>
    [Id(8)] public SamplingSourcePin? Source { get; set; }
}

/// <summary>
/// Drives one sampling job: the samples are cut into units of <see cref="SamplingJobSpec.UnitSize"/>, each with its labels
/// (fixed by the job seed) and its own seed, handed to the sampling workers of every silo (one unit in flight per worker),
/// recorded in persistent state as they finish, and finally packed into the FID <c>.npz</c>. Reentrant so that status and
/// cancel answer while the loop awaits its workers; only the loop writes the state while it runs. A re-activation (after a
/// restart or on another silo) continues an unfinished job with the units not yet done.
/// </summary>
[Reentrant]
public sealed partial class SamplingJobGrain(
    [PersistentState("sampling", RaeStorage.GrainStateProvider)] IPersistentState<SamplingJobState> job,
    ICheckpointPayloadStore checkpoints,
    SiloDataRoots dataRoots,
    ILogger<SamplingJobGrain> logger) : UnitJobGrain<SamplingJobState>(job), ISamplingJobGrain
{
    /// <summary>A unit that fails this many times in a row fails the job.</summary>
    public const int MaxUnitAttempts = 3;

    /// <summary>The plan of this activation: the configuration is parsed and the files are checked once, not on every poll.</summary>
    private SamplingPlan? _plan;
    private RaeJobException? _planError;
    private double _samplesPerSecond;

    protected override ILogger Logger => logger;

    public async Task Start(SamplingJobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (State.Spec is not null)
        {
            // A client whose first Start lost its answer (a timeout, a silo lost) submits the same job again: that is the
            // job already started, not a conflict.
            if (IsSameSubmission(spec, State.Spec)) return;
            throw new RaeJobException($"Job '{JobId}' already exists with another spec; submit the sampling job under another id.");
        }
        var source = await ResolveSourceAsync(spec);
        // The resolved step is part of the spec from now on, so status and resumption name the weights actually sampled.
        if (source is not null) spec = spec with { SourceCheckpointStep = source.Checkpoint.Step };
        var config = SamplingPlan.ParseConfig(JobId, spec, source);
        if (spec.Classes == 0) spec = spec with { Classes = config.Misc.NumClasses };
        var plan = SamplingPlan.Create(JobId, spec, source, config, dataRoots);
        var now = DateTimeOffset.UtcNow;
        Job.State = new SamplingJobState { Spec = spec, Source = source, State = JobState.Pending, CreatedAt = now, UpdatedAt = now };
        await Job.WriteStateAsync();
        (_plan, _planError) = (plan, null);
        await ReportAsync(plan);
        EnsureLoop();
    }

    /// <summary>The submitted spec equals the started one once Start's own additions (resolved step, class count) are applied.</summary>
    private static bool IsSameSubmission(SamplingJobSpec submitted, SamplingJobSpec started) =>
        submitted with
        {
            SourceCheckpointStep = submitted.SourceCheckpointStep ?? started.SourceCheckpointStep,
            Classes = submitted.Classes == 0 ? started.Classes : submitted.Classes,
        } == started;

    public async Task Resume()
    {
        RequireSpec();
        await ResumeJobAsync();
    }

    public Task<SamplingJobStatus> GetStatus()
    {
        var spec = RequireSpec();
        var plan = TryPlan();
        return Task.FromResult(new SamplingJobStatus
        {
            JobId = JobId,
            State = State.State,
            Spec = spec,
            UnitsTotal = plan?.UnitCount ?? 0,
            UnitsDone = State.UnitsDone.Count,
            SamplesDone = plan is null ? 0 : State.UnitsDone.Keys.Sum(unit => plan.UnitRange(unit).Count),
            SamplesPerSecond = _samplesPerSecond,
            FailureReason = State.FailureReason,
            OutputLocation = State.NpzLocation ?? (plan is null ? null : plan.OutputPrefix + "/units"),
            UnitsLocation = plan is null ? null : plan.OutputPrefix + "/units",
            ImagesLocation = plan is { Decodes: true, WritePngs: true } ? plan.ImagesPrefix : null,
            CreatedAt = State.CreatedAt,
            UpdatedAt = State.UpdatedAt,
            Resumptions = State.Resumptions,
        });
    }

    public async Task Cancel()
    {
        RequireSpec();
        await CancelJobAsync();
    }

    protected override async Task RunLoopAsync()
    {
        // A resumed job looks again: the files it names may be there now.
        if (_plan is null) _planError = null;
        if (TryPlan() is not { } plan)
        {
            await FinishAsync(JobState.Failed, _planError!.Message);
            return;
        }
        try
        {
            State.State = JobState.Running;
            State.UpdatedAt = DateTimeOffset.UtcNow;
            await Job.WriteStateAsync();
            await ReportAsync(plan);
            await RunUnitsAsync(plan);
            if (Deactivating) return;
            if (Loop.CancelRequested)
            {
                await FinishAsync(JobState.Cancelled, null);
                return;
            }
            if (plan.Decodes)
            {
                var workers = await DiscoverWorkersAsync(plan);
                await workers[0].AssembleNpz(JobId, plan.Spec, plan.UnitCount);
                State.NpzLocation = plan.NpzLocation;
            }
            await FinishAsync(JobState.Completed, null);
            LogCompleted(JobId, plan.Spec.Samples, State.NpzLocation ?? plan.OutputPrefix);
        }
        catch (Exception error) when (!Deactivating)
        {
            LogFailed(error, JobId);
            await FinishAsync(JobState.Failed, error is RaeJobException ? error.Message : $"{error.GetType().Name}: {error.Message}");
        }
    }

    private async Task RunUnitsAsync(SamplingPlan plan)
    {
        var spec = plan.Spec;
        var labels = SamplingLabels.Compute(spec.Labels, spec.Samples, spec.Classes, spec.Seed);
        var pending = new Queue<int>(Enumerable.Range(0, plan.UnitCount).Where(unit => !State.UnitsDone.ContainsKey(unit)));
        var attempts = new Dictionary<int, int>();
        var idle = new Queue<ISamplingWorkerGrain>(await DiscoverWorkersAsync(plan));
        var inFlight = new Dictionary<Task<SamplingUnitResult>, (ISamplingWorkerGrain Worker, int Unit)>();
        var clock = Stopwatch.StartNew();
        long samplesThisRun = 0;
        while (pending.Count > 0 || inFlight.Count > 0)
        {
            while (!Loop.CancelRequested && pending.Count > 0 && idle.Count > 0)
            {
                var unit = pending.Dequeue();
                var worker = idle.Dequeue();
                var (first, count) = plan.UnitRange(unit);
                var request = new SamplingUnitRequest(JobId, unit, first, labels[first..(first + count)],
                    SamplingLabels.UnitSeed(spec.Seed, unit), spec, plan.OutputPrefix, State.Source);
                inFlight[CancellableUnit(worker, worker.RunUnit(request))] = (worker, unit);
            }
            if (inFlight.Count == 0)
            {
                if (Loop.CancelRequested) return;
                // Every worker was dropped after failures: look again for the silos that answer.
                idle = new Queue<ISamplingWorkerGrain>(await DiscoverWorkersAsync(plan));
                continue;
            }
            var finished = await Task.WhenAny(inFlight.Keys);
            var (owner, finishedUnit) = inFlight[finished];
            inFlight.Remove(finished);
            try
            {
                var result = await finished;
                State.UnitsDone[result.Unit] = result.UnitLocation;
                State.UpdatedAt = DateTimeOffset.UtcNow;
                await Job.WriteStateAsync();
                samplesThisRun += result.Samples;
                _samplesPerSecond = samplesThisRun / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                idle.Enqueue(owner);
                await ReportAsync(plan);
            }
            catch (Exception error) when (IsCancelledUnit(error))
            {
                // The job's cancel stopped the unit on its worker: nothing of it was written, and nothing is retried.
            }
            catch (Exception error) when (error is not RaeJobException)
            {
                var tries = attempts[finishedUnit] = attempts.GetValueOrDefault(finishedUnit) + 1;
                LogUnitFailed(error, JobId, finishedUnit, tries);
                if (tries >= MaxUnitAttempts)
                    throw new RaeJobException($"Sampling job '{JobId}': unit {finishedUnit} failed {tries} times; last error: {error.GetType().Name}: {error.Message}");
                pending.Enqueue(finishedUnit);
                // The worker may be on a silo that went away; it gets no more units in this run.
            }
        }
    }

    private async Task<IReadOnlyList<ISamplingWorkerGrain>> DiscoverWorkersAsync(SamplingPlan plan)
    {
        var infos = await SiloAgents.AskEveryActiveSiloAsync(GrainFactory, agent => agent.GetComputeInfo(),
            (error, silo) => LogSiloSkipped(error, silo.ToString()));
        var workers = SiloAgents.SpreadOverSilos(infos)
            .Select(slot => GrainFactory.GetGrain<ISamplingWorkerGrain>(SiloBoundKey.Sampler(slot.Silo, slot.Device)))
            .ToList();
        if (plan.MaxWorkers > 0 && workers.Count > plan.MaxWorkers) workers = workers.Take(plan.MaxWorkers).ToList();
        return workers.Count > 0 ? workers
            : throw new RaeJobException($"Sampling job '{JobId}': no silo offers a device to sample on.");
    }

    protected override async Task FinishAsync(JobState state, string? reason)
    {
        State.State = state;
        State.FailureReason = reason;
        State.UpdatedAt = DateTimeOffset.UtcNow;
        await Job.WriteStateAsync();
        if (State.Spec?.SourceTrainingJobId is { } sourceJob && !string.IsNullOrWhiteSpace(sourceJob))
        {
            try
            {
                await GrainFactory.GetGrain<ICheckpointStoreGrain>(sourceJob).Unpin(JobId);
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                logger.LogWarning(error, "Sampling job {JobId}: could not unpin its source checkpoint of job {Source}", JobId, sourceJob);
            }
        }
        await ReportAsync(TryPlan());
    }

    private Task ReportAsync(SamplingPlan? plan) =>
        Reporter.ReportAsync(new JobSummary(JobId, JobKind.Sampling,
            State.State, State.UnitsDone.Count, plan?.UnitCount ?? 0, State.CreatedAt, State.UpdatedAt, State.FailureReason));

    /// <summary>The activation's plan, built on first use; null (and <see cref="_planError"/> set) when the job cannot be planned.</summary>
    private SamplingPlan? TryPlan()
    {
        if (_plan is not null || _planError is not null) return _plan;
        try
        {
            _plan = SamplingPlan.Create(JobId, RequireSpec(), dataRoots, State.Source);
        }
        catch (RaeJobException error)
        {
            _planError = error;
        }
        return _plan;
    }

    /// <summary>
    /// The committed checkpoint the spec names (its step, or the latest), plus the configuration stored in it when the spec
    /// brings none; null when the spec names no training job. <see cref="RaeJobException"/> names the job and step that are missing.
    /// </summary>
    private async Task<SamplingSourcePin?> ResolveSourceAsync(SamplingJobSpec spec)
    {
        if (spec.SourceTrainingJobId is not { } sourceJob) return null;
        if (string.IsNullOrWhiteSpace(sourceJob))
            throw new RaeJobException($"Sampling job '{JobId}': the source training job id is empty.");
        var committed = await GrainFactory.GetGrain<ICheckpointStoreGrain>(sourceJob).List();
        if (committed.Count == 0)
        {
            var known = true;
            try
            {
                await GrainFactory.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).Get(sourceJob);
            }
            catch (RaeJobException)
            {
                known = false;
            }
            throw new RaeJobException(known
                ? $"Sampling job '{JobId}': training job '{sourceJob}' has no committed checkpoint yet{(spec.SourceCheckpointStep is { } s ? $" (step {s} was asked for)" : "")}."
                : $"Sampling job '{JobId}': training job '{sourceJob}' is unknown: the registry does not list it and it has no committed checkpoint; 'rae jobs list' shows the jobs.");
        }
        var checkpoint = spec.SourceCheckpointStep is { } step
            ? committed.FirstOrDefault(c => c.Step == step)
                ?? throw new RaeJobException($"Sampling job '{JobId}': training job '{sourceJob}' has no committed checkpoint at step {step}; committed steps: [{string.Join(", ", committed.Select(c => c.Step))}].")
            : committed.MaxBy(c => c.Step)!;
        // Retention of the training job must not delete what this job samples from until it ends.
        await GrainFactory.GetGrain<ICheckpointStoreGrain>(sourceJob).Pin(checkpoint.Step, JobId);
        string? configYaml = null;
        if (spec.Config is null)
        {
            try
            {
                await using var payload = await checkpoints.OpenReadAsync(checkpoint);
                configYaml = await CheckpointConfigReader.ReadConfigYamlAsync(payload, checkpoint.SizeBytes, $"checkpoint of job '{sourceJob}' at step {checkpoint.Step}");
            }
            catch (Exception error) when (error is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                throw new RaeJobException($"Sampling job '{JobId}': the checkpoint of training job '{sourceJob}' at step {checkpoint.Step} cannot be read for its configuration: {error.Message}", error);
            }
        }
        return new SamplingSourcePin(checkpoint, configYaml);
    }

    private SamplingJobSpec RequireSpec() => State.Spec
        ?? throw new RaeJobException($"Sampling job '{JobId}' is unknown (it was never started).");

    [LoggerMessage(Level = LogLevel.Information, Message = "Sampling job {JobId} completed: {Samples} samples in {Location}")]
    private partial void LogCompleted(string jobId, int samples, string location);

    [LoggerMessage(Level = LogLevel.Error, Message = "Sampling job {JobId} failed")]
    private partial void LogFailed(Exception error, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sampling job {JobId}: unit {Unit} failed (attempt {Attempt})")]
    private partial void LogUnitFailed(Exception error, string jobId, int unit, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Silo {Silo} did not answer; it gets no sampling units")]
    private partial void LogSiloSkipped(Exception error, string silo);

}
