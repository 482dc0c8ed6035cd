using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;

namespace RAE.Grains.Sampling;

[GenerateSerializer]
public sealed class SamplingJobState
{
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
    ILogger<SamplingJobGrain> logger) : Grain, ISamplingJobGrain
{
    /// <summary>A unit that fails this many times in a row fails the job.</summary>
    public const int MaxUnitAttempts = 3;
    private static readonly TimeSpan AgentTimeout = TimeSpan.FromSeconds(5);

    private Task? _loop;
    private bool _cancelRequested;
    private bool _deactivating;
    private double _samplesPerSecond;

    private string JobId => this.GetPrimaryKeyString();
    private SamplingJobState State => job.State;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Keeps the activation alive while the loop runs (idle collection would otherwise stop a long job).
        this.RegisterGrainTimer(_ => Task.CompletedTask, new GrainTimerCreationOptions(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1)) { KeepAlive = true });
        if (State.Spec is not null && State.State is JobState.Pending or JobState.Running)
        {
            State.Resumptions++;
            EnsureLoop();
        }
        return Task.CompletedTask;
    }

    /// <summary>Stops handing out units and records the ones in flight; the state stays running, so the next activation continues.</summary>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating = true;
        _cancelRequested = true;
        if (_loop is not { } loop) return;
        try
        {
            await loop.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Units still in flight are not recorded and will be sampled again by the next activation.
        }
    }

    public async Task Start(SamplingJobSpec spec)
    {
        if (State.Spec is not null)
            throw new RaeJobException($"Sampling job '{JobId}' was already started; submit a new job instead.");
        var plan = SamplingPlan.Create(JobId, spec);
        var now = DateTimeOffset.UtcNow;
        job.State = new SamplingJobState { Spec = spec, State = JobState.Pending, CreatedAt = now, UpdatedAt = now };
        await job.WriteStateAsync();
        await ReportAsync(plan);
        EnsureLoop();
    }

    public async Task Resume()
    {
        RequireSpec();
        if (State.State is JobState.Completed) return;
        if (_loop is { IsCompleted: false }) return;
        if (State.State is JobState.Cancelled or JobState.Failed)
        {
            State.State = JobState.Pending;
            State.FailureReason = null;
            State.UpdatedAt = DateTimeOffset.UtcNow;
            await job.WriteStateAsync();
        }
        EnsureLoop();
    }

    public Task<SamplingJobStatus> GetStatus()
    {
        var spec = RequireSpec();
        var plan = TryPlan(spec);
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
        if (State.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return;
        _cancelRequested = true;
        if (_loop is { } loop) await loop;
        if (State.State is JobState.Pending or JobState.Running) await FinishAsync(JobState.Cancelled, null);
    }

    private void EnsureLoop()
    {
        if (_loop is { IsCompleted: false }) return;
        _cancelRequested = false;
        _loop = RunLoopAsync();
    }

    private async Task RunLoopAsync()
    {
        SamplingPlan plan;
        try
        {
            plan = SamplingPlan.Create(JobId, RequireSpec());
        }
        catch (RaeJobException error)
        {
            await FinishAsync(JobState.Failed, error.Message);
            return;
        }
        try
        {
            State.State = JobState.Running;
            State.UpdatedAt = DateTimeOffset.UtcNow;
            await job.WriteStateAsync();
            await ReportAsync(plan);
            await RunUnitsAsync(plan);
            if (_deactivating) return;
            if (_cancelRequested)
            {
                await FinishAsync(JobState.Cancelled, null);
                return;
            }
            if (plan.Decodes)
            {
                var workers = await DiscoverWorkersAsync(plan);
                var locations = Enumerable.Range(0, plan.UnitCount).Select(unit => State.UnitsDone[unit]).ToList();
                await workers[0].AssembleNpz(JobId, locations, plan.NpzLocation);
                State.NpzLocation = plan.NpzLocation;
            }
            await FinishAsync(JobState.Completed, null);
            LogCompleted(JobId, plan.Spec.Samples, State.NpzLocation ?? plan.OutputPrefix);
        }
        catch (Exception error) when (!_deactivating)
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
            while (!_cancelRequested && pending.Count > 0 && idle.Count > 0)
            {
                var unit = pending.Dequeue();
                var worker = idle.Dequeue();
                var (first, count) = plan.UnitRange(unit);
                var request = new SamplingUnitRequest(JobId, unit, first, labels[first..(first + count)],
                    SamplingLabels.UnitSeed(spec.Seed, unit), spec, plan.OutputPrefix);
                inFlight[worker.RunUnit(request)] = (worker, unit);
            }
            if (inFlight.Count == 0)
            {
                if (_cancelRequested) return;
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
                await job.WriteStateAsync();
                samplesThisRun += result.Samples;
                _samplesPerSecond = samplesThisRun / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                idle.Enqueue(owner);
                await ReportAsync(plan);
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
        var hosts = await GrainFactory.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        var infos = await Task.WhenAll(hosts.Keys.Select(async silo =>
        {
            try
            {
                return await GrainFactory.GetGrain<ISiloAgentGrain>(SiloBoundKey.Agent(silo)).GetComputeInfo().WaitAsync(AgentTimeout);
            }
            catch (Exception error)
            {
                LogSiloSkipped(error, silo.ToString());
                return null;
            }
        }));
        var workers = infos.OfType<SiloComputeInfo>()
            .SelectMany(info => info.Devices.Select((device, index) => (Info: info, Device: device, Index: index)))
            .OrderBy(entry => entry.Index).ThenBy(entry => entry.Info.SiloAddress, StringComparer.Ordinal)
            .Select(entry => GrainFactory.GetGrain<ISamplingWorkerGrain>(SiloBoundKey.Sampler(SiloAddress.FromParsableString(entry.Info.SiloAddress), entry.Device)))
            .ToList();
        if (plan.MaxWorkers > 0 && workers.Count > plan.MaxWorkers) workers = workers.Take(plan.MaxWorkers).ToList();
        return workers.Count > 0 ? workers
            : throw new RaeJobException($"Sampling job '{JobId}': no silo offers a device to sample on.");
    }

    private async Task FinishAsync(JobState state, string? reason)
    {
        State.State = state;
        State.FailureReason = reason;
        State.UpdatedAt = DateTimeOffset.UtcNow;
        await job.WriteStateAsync();
        await ReportAsync(TryPlan(RequireSpec()));
    }

    private async Task ReportAsync(SamplingPlan? plan)
    {
        try
        {
            await GrainFactory.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).Report(new JobSummary(JobId, JobKind.Sampling,
                State.State, State.UnitsDone.Count, plan?.UnitCount ?? 0, State.CreatedAt, State.UpdatedAt, State.FailureReason));
        }
        catch (Exception error)
        {
            LogReportFailed(error, JobId);
        }
    }

    private SamplingPlan? TryPlan(SamplingJobSpec spec)
    {
        try
        {
            return SamplingPlan.Create(JobId, spec);
        }
        catch (RaeJobException)
        {
            return null;
        }
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sampling job {JobId}: could not report to the job registry")]
    private partial void LogReportFailed(Exception error, string jobId);
}
