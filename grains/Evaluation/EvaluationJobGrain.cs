using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;
using RAE.Grains.Jobs;
using RAE.Grains.Placement;
using RAE.Grains.Storage;

namespace RAE.Grains.Evaluation;

/// <summary>One unit of the plan: images [First, First + Count) of a side.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationUnitPlan([property: Id(0)] EvaluationSide Side, [property: Id(1)] int First, [property: Id(2)] int Count);

[GenerateSerializer]
public sealed class EvaluationJobState : IUnitJobState
{
    bool IUnitJobState.Started => Spec is not null;

    [Id(0)] public EvaluationJobSpec? Spec { get; set; }
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public ResolvedEvaluationInput? Samples { get; set; }
    [Id(3)] public ResolvedEvaluationInput? Reference { get; set; }
    [Id(4)] public List<EvaluationUnitPlan> Units { get; set; } = [];
    /// <summary>Finished units and where their results are; written after every unit, so a finished unit is never redone.</summary>
    [Id(5)] public SortedDictionary<int, string> UnitsDone { get; set; } = [];
    [Id(6)] public string? StatisticsLocation { get; set; }
    [Id(7)] public int ImageSize { get; set; }
    [Id(8)] public EvaluationResult? Result { get; set; }
    [Id(9)] public string? FailureReason { get; set; }
    [Id(10)] public DateTimeOffset CreatedAt { get; set; }
    [Id(11)] public DateTimeOffset UpdatedAt { get; set; }
    [Id(12)] public int Resumptions { get; set; }
}

/// <summary>
/// Drives one evaluation job (see <see cref="IEvaluationJobGrain"/>). Reentrant so that status and cancel answer while
/// the loop awaits its workers; only the loop writes the state while it runs. A re-activation (after its silo died)
/// continues with the units not yet done.
/// </summary>
[Reentrant]
public sealed partial class EvaluationJobGrain(
    [PersistentState("evaluation", RaeStorage.GrainStateProvider)] IPersistentState<EvaluationJobState> job,
    IBlobStore blobs,
    ILocalSiloDetails silo,
    ILogger<EvaluationJobGrain> logger) : UnitJobGrain<EvaluationJobState>(job), IEvaluationJobGrain
{
    /// <summary>A unit that fails this many times fails the job.</summary>
    public const int MaxUnitAttempts = 3;

    protected override ILogger Logger => logger;

    public async Task Start(EvaluationJobSpec spec)
    {
        if (State.Spec is not null) throw new RaeJobException($"Evaluation job '{JobId}' was already started; submit a new job instead.");
        ArgumentNullException.ThrowIfNull(spec);
        var plan = await EvaluationPlanner.PlanAsync(JobId, spec, GrainFactory, blobs, DiscoverWorkersAsync);
        var now = DateTimeOffset.UtcNow;
        Job.State = new EvaluationJobState
        {
            Spec = spec, State = JobState.Pending, Samples = plan.Samples, Reference = plan.Reference, Units = plan.Units.ToList(),
            StatisticsLocation = plan.StatisticsLocation, ImageSize = plan.ImageSize, CreatedAt = now, UpdatedAt = now,
        };
        await Job.WriteStateAsync();
        await ReportAsync();
        EnsureLoop();
    }

    public async Task Resume()
    {
        RequireSpec();
        await ResumeJobAsync();
    }

    public Task<EvaluationJobStatus> GetStatus() => Task.FromResult(new EvaluationJobStatus
    {
        JobId = JobId,
        State = State.State,
        Spec = RequireSpec(),
        UnitsTotal = State.Units.Count,
        UnitsDone = State.UnitsDone.Count,
        Result = State.Result,
        FailureReason = State.FailureReason,
        Samples = State.Samples,
        Reference = State.Reference,
        CreatedAt = State.CreatedAt,
        UpdatedAt = State.UpdatedAt,
        Resumptions = State.Resumptions,
        Silo = silo.SiloAddress.ToParsableString(),
        FinishedUnits = State.UnitsDone.Keys.ToList(),
    });

    public async Task Cancel()
    {
        RequireSpec();
        await CancelJobAsync();
    }

    protected override async Task RunLoopAsync()
    {
        try
        {
            State.State = JobState.Running;
            State.UpdatedAt = DateTimeOffset.UtcNow;
            await Job.WriteStateAsync();
            await ReportAsync();
            await RunUnitsAsync();
            if (Deactivating) return;
            if (Loop.CancelRequested)
            {
                await FinishAsync(JobState.Cancelled, null);
                return;
            }
            State.Result = await MergeAsync();
            await FinishAsync(JobState.Completed, null);
            LogCompleted(JobId, State.Result.Metric, State.Result.Value);
        }
        catch (Exception error) when (!Deactivating)
        {
            LogFailed(error, JobId);
            await FinishAsync(JobState.Failed, error is RaeJobException ? error.Message : $"{error.GetType().Name}: {error.Message}");
        }
    }

    private EvaluationUnitRequest RequestFor(int unit)
    {
        var (side, first, count) = State.Units[unit];
        return new EvaluationUnitRequest(JobId, unit, side, first, count, State.Spec!, State.Samples!, State.Reference!, State.ImageSize,
            EvaluationFiles.UnitLocation(JobId, unit, side));
    }

    private async Task RunUnitsAsync()
    {
        var pending = new Queue<int>(Enumerable.Range(0, State.Units.Count).Where(unit => !State.UnitsDone.ContainsKey(unit)));
        var attempts = new Dictionary<int, int>();
        var idle = new Queue<IEvaluationWorkerGrain>(await DiscoverWorkersAsync());
        var inFlight = new Dictionary<Task<string>, (IEvaluationWorkerGrain Worker, int Unit)>();
        while (pending.Count > 0 || inFlight.Count > 0)
        {
            while (!Loop.CancelRequested && pending.Count > 0 && idle.Count > 0)
            {
                var unit = pending.Dequeue();
                var worker = idle.Dequeue();
                inFlight[CancellableUnit(worker, worker.RunUnit(RequestFor(unit)))] = (worker, unit);
            }
            if (inFlight.Count == 0)
            {
                if (Loop.CancelRequested) return;
                // Every worker was dropped after failures: look again for the silos that answer.
                idle = new Queue<IEvaluationWorkerGrain>(await DiscoverWorkersAsync());
                continue;
            }
            var finished = await Task.WhenAny(inFlight.Keys);
            var (owner, finishedUnit) = inFlight[finished];
            inFlight.Remove(finished);
            try
            {
                State.UnitsDone[finishedUnit] = await finished;
                State.UpdatedAt = DateTimeOffset.UtcNow;
                await Job.WriteStateAsync();
                idle.Enqueue(owner);
                await ReportAsync();
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
                    throw new RaeJobException($"Evaluation job '{JobId}': unit {finishedUnit} failed {tries} times; last error: {error.GetType().Name}: {error.Message}");
                pending.Enqueue(finishedUnit);
                // The worker may be on a silo that went away; it gets no more units in this run.
            }
        }
    }

    /// <summary>The units in unit order, merged on one worker; a worker on a silo that went away hands over to the next.</summary>
    private async Task<EvaluationResult> MergeAsync()
    {
        IReadOnlyList<string> Of(EvaluationSide side) =>
            Enumerable.Range(0, State.Units.Count).Where(unit => State.Units[unit].Side == side).Select(unit => State.UnitsDone[unit]).ToList();
        var request = new EvaluationMergeRequest(JobId, State.Spec!, State.Samples!, State.Reference!, Of(EvaluationSide.Samples),
            Of(EvaluationSide.Reference), Of(EvaluationSide.Pair), State.StatisticsLocation, State.ImageSize);
        Exception? last = null;
        for (var attempt = 0; attempt < MaxUnitAttempts; attempt++)
        {
            foreach (var worker in await DiscoverWorkersAsync())
            {
                try
                {
                    return await worker.Merge(request);
                }
                catch (Exception error) when (error is not RaeJobException)
                {
                    last = error;
                    LogUnitFailed(error, JobId, -1, attempt + 1);
                }
            }
        }
        throw new RaeJobException($"Evaluation job '{JobId}': merging the units failed; last error: {last?.GetType().Name}: {last?.Message}");
    }

    private async Task<IReadOnlyList<IEvaluationWorkerGrain>> DiscoverWorkersAsync()
    {
        var infos = await SiloAgents.AskEveryActiveSiloAsync(GrainFactory, agent => agent.GetComputeInfo(),
            (error, silo) => LogSiloSkipped(error, silo.ToString()));
        var workers = SiloAgents.SpreadOverSilos(infos)
            .Select(slot => GrainFactory.GetGrain<IEvaluationWorkerGrain>(EvaluationWorkerGrain.KeyOf(slot.Silo, slot.Device)))
            .ToList();
        var max = State.Spec?.MaxWorkers ?? 0;
        if (max > 0 && workers.Count > max) workers = workers.Take(max).ToList();
        return workers.Count > 0 ? workers : throw new RaeJobException($"Evaluation job '{JobId}': no silo offers a device to evaluate on.");
    }

    protected override async Task FinishAsync(JobState state, string? reason)
    {
        State.State = state;
        State.FailureReason = reason;
        State.UpdatedAt = DateTimeOffset.UtcNow;
        await Job.WriteStateAsync();
        await ReportAsync();
    }

    private Task ReportAsync() =>
        Reporter.ReportAsync(new JobSummary(JobId, JobKind.Evaluation,
            State.State, State.UnitsDone.Count, State.Units.Count, State.CreatedAt, State.UpdatedAt, State.FailureReason));

    private EvaluationJobSpec RequireSpec() => State.Spec
        ?? throw new RaeJobException($"Evaluation job '{JobId}' is unknown (it was never started).");

    [LoggerMessage(Level = LogLevel.Information, Message = "Evaluation job {JobId} completed: {Metric} = {Value}")]
    private partial void LogCompleted(string jobId, string metric, double value);

    [LoggerMessage(Level = LogLevel.Error, Message = "Evaluation job {JobId} failed")]
    private partial void LogFailed(Exception error, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Evaluation job {JobId}: unit {Unit} failed (attempt {Attempt}); -1 is the merge")]
    private partial void LogUnitFailed(Exception error, string jobId, int unit, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Silo {Silo} did not answer; it gets no evaluation units")]
    private partial void LogSiloSkipped(Exception error, string silo);
}
