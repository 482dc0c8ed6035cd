using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;
using RAE.Grains.Workers;

namespace RAE.Grains.Training;

[GenerateSerializer]
public sealed class JobRegistryState
{
    [Id(0)] public Dictionary<string, JobSummary> Jobs { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// The catalog of jobs. Silos call <see cref="IJobRegistryMaintenance.ResumeUnfinished"/> now and then, which re-activates
/// the coordinator of every unfinished job wherever Orleans places it (after the silo that held it went away).
/// </summary>
[Reentrant]
public sealed class JobRegistryGrain(
    [PersistentState("registry", RaeStorage.GrainStateProvider)] IPersistentState<JobRegistryState> registry,
    IEnumerable<IRankWorkerFactory> workerFactories,
    ILogger<JobRegistryGrain> logger) : Grain, IJobRegistryGrain, IJobRegistryMaintenance
{
    public async Task<string> SubmitTraining(TrainingJobSpec spec)
    {
        TrainingSpecValidator.Validate(spec, workerFactories.Select(f => f.Workload));
        var jobId = $"train-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}";
        var now = DateTimeOffset.UtcNow;
        registry.State.Jobs[jobId] = new JobSummary(jobId, JobKind.Training, JobState.Pending, 0, spec.Steps, now, now, null);
        await registry.WriteStateAsync();
        await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(jobId).Start(spec);
        return jobId;
    }

    public Task<IReadOnlyList<JobSummary>> List() =>
        Task.FromResult<IReadOnlyList<JobSummary>>(registry.State.Jobs.Values.OrderBy(j => j.CreatedAt).ThenBy(j => j.JobId, StringComparer.Ordinal).ToList());

    public Task<JobSummary> Get(string jobId) => Task.FromResult(Require(jobId));

    public async Task Cancel(string jobId)
    {
        var summary = Require(jobId);
        if (summary.Kind == JobKind.Training) await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(jobId).Cancel();
        else await GrainFactory.GetGrain<ISamplingJobGrain>(jobId).Cancel();
    }

    public async Task Report(JobSummary summary)
    {
        var known = registry.State.Jobs.TryGetValue(summary.JobId, out var previous);
        registry.State.Jobs[summary.JobId] = summary with { CreatedAt = previous?.CreatedAt ?? summary.CreatedAt };
        // Progress alone is kept in memory; a change of state is persisted.
        if (!known || previous!.State != summary.State) await registry.WriteStateAsync();
    }

    public async Task ResumeUnfinished()
    {
        foreach (var summary in registry.State.Jobs.Values.Where(j => j.State is JobState.Pending or JobState.Running or JobState.Recovering).ToList())
        {
            try
            {
                if (summary.Kind == JobKind.Sampling) await GrainFactory.GetGrain<ISamplingJobGrain>(summary.JobId).Resume();
                else await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(summary.JobId).Resume();
            }
            catch (Exception error)
            {
                logger.LogWarning(error, "Could not resume job {JobId}", summary.JobId);
            }
        }
    }

    private JobSummary Require(string jobId) =>
        registry.State.Jobs.TryGetValue(jobId ?? "", out var summary) ? summary
            : throw new RaeJobException($"Job '{jobId}' is unknown; 'rae jobs list' shows the jobs this cluster knows.");
}
