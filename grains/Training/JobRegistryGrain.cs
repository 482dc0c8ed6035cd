using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Placement;
using RAE.Grains.Sampling;
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
    LatentTrainingData latentData,
    ILogger<JobRegistryGrain> logger) : Grain, IJobRegistryGrain, IJobRegistryMaintenance
{
    /// <summary>The sampling workloads this cluster's sampling job grain implements.</summary>
    public static readonly IReadOnlyList<string> SamplingWorkloads = [SamplingPlan.Workload];

    public async Task<string> SubmitTraining(TrainingJobSpec spec)
    {
        TrainingSpecValidator.Validate(spec, workerFactories.Select(f => f.Workload));
        await CheckLatentDataset(spec);
        var jobId = $"train-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}";
        var now = DateTimeOffset.UtcNow;
        registry.State.Jobs[jobId] = new JobSummary(jobId, JobKind.Training, JobState.Pending, 0, spec.Steps, now, now, null);
        await registry.WriteStateAsync();
        await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(jobId).Start(spec);
        return jobId;
    }

    public Task<string> SubmitSampling(SamplingJobSpec spec) =>
        SubmitSamplingAs($"sample-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}", spec);

    public async Task<string> SubmitSamplingAs(string jobId, SamplingJobSpec spec)
    {
        if (spec is null) throw new RaeJobException("A sampling job needs a spec; none was given.");
        if (string.IsNullOrWhiteSpace(jobId) || jobId.Any(c => char.IsWhiteSpace(c) || c is '/' or '\\' or '|') || jobId.Contains("..", StringComparison.Ordinal))
            throw new RaeJobException($"Job id '{jobId}' is not usable: it must be non-empty, without spaces, '/', '\\', '|' or '..'.");
        if (registry.State.Jobs.TryGetValue(jobId, out var existing))
        {
            if (existing.Kind != JobKind.Sampling)
                throw new RaeJobException($"Job '{jobId}' already exists; submit the sampling job under another id.");
            // A retried submission (its first answer was lost): the job's grain accepts the same spec and refuses another.
            await GrainFactory.GetGrain<ISamplingJobGrain>(jobId).Start(spec);
            return jobId;
        }
        if (!SamplingWorkloads.Contains(spec.Workload, StringComparer.Ordinal))
            throw new RaeJobException($"Invalid sampling job: Workload '{spec.Workload}' is unknown (known sampling workloads: {string.Join(", ", SamplingWorkloads)}; training workloads such as {string.Join(", ", workerFactories.Select(f => f.Workload))} are sampled through '{SamplingPlan.Workload}').");
        // The job's grain does the full validation (configuration, weights files, source checkpoint) before it persists anything.
        await GrainFactory.GetGrain<ISamplingJobGrain>(jobId).Start(spec);
        if (!registry.State.Jobs.ContainsKey(jobId))
        {
            // The grain normally reports itself while it starts; list the job even if that report was lost.
            var now = DateTimeOffset.UtcNow;
            var units = spec.UnitSize > 0 ? (spec.Samples + spec.UnitSize - 1) / spec.UnitSize : 0;
            registry.State.Jobs[jobId] = new JobSummary(jobId, JobKind.Sampling, JobState.Pending, 0, units, now, now, null);
            await registry.WriteStateAsync();
        }
        return jobId;
    }

    public async Task<string> SubmitEncoding(EncodeJobSpec spec)
    {
        if (spec is null) throw new RaeJobException("An encode job needs a spec; none was given.");
        var jobId = $"encode-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}";
        // The job's grain checks the dataset, the latent name and the configuration before it persists anything.
        await GrainFactory.GetGrain<IEncodeJobGrain>(jobId).Start(spec);
        if (!registry.State.Jobs.ContainsKey(jobId))
        {
            var now = DateTimeOffset.UtcNow;
            registry.State.Jobs[jobId] = new JobSummary(jobId, JobKind.Encoding, JobState.Pending, 0, 0, now, now, null);
            await registry.WriteStateAsync();
        }
        return jobId;
    }

    public async Task<IReadOnlyList<WorkloadOffer>> GetWorkloads()
    {
        var answers = await SiloAgents.AskEveryActiveSiloAsync(GrainFactory, agent => agent.GetWorkloads(),
            (error, silo) => logger.LogWarning(error, "Silo {Silo} did not say which workloads it offers", silo));
        var silos = answers.OrderBy(s => s.SiloAddress, StringComparer.Ordinal).ToList();
        IEnumerable<WorkloadOffer> Offers(JobKind kind, Func<SiloWorkloads, IReadOnlyList<string>> workloads) => silos
            .SelectMany(s => workloads(s).Select(workload => (Workload: workload, Silo: s)))
            .GroupBy(entry => entry.Workload, StringComparer.Ordinal)
            .OrderBy(group => group.Key, StringComparer.Ordinal)
            .Select(group => new WorkloadOffer(kind, group.Key, group.Select(entry => new WorkloadPlacement(entry.Silo.SiloAddress, entry.Silo.Devices)).ToList()));
        return Offers(JobKind.Training, s => s.TrainingWorkloads).Concat(Offers(JobKind.Sampling, s => s.SamplingWorkloads)).ToList();
    }

    public Task<IReadOnlyList<JobSummary>> List() =>
        Task.FromResult<IReadOnlyList<JobSummary>>(registry.State.Jobs.Values.OrderBy(j => j.CreatedAt).ThenBy(j => j.JobId, StringComparer.Ordinal).ToList());

    public Task<JobSummary> Get(string jobId) => Task.FromResult(Require(jobId));

    public async Task Cancel(string jobId)
    {
        var summary = Require(jobId);
        if (summary.Kind == JobKind.Training) await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(jobId).Cancel();
        else if (summary.Kind == JobKind.Evaluation) await GrainFactory.GetGrain<IEvaluationJobGrain>(jobId).Cancel();
        else if (summary.Kind == JobKind.Encoding) await GrainFactory.GetGrain<IEncodeJobGrain>(jobId).Cancel();
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
                else if (summary.Kind == JobKind.Evaluation) await GrainFactory.GetGrain<IEvaluationJobGrain>(summary.JobId).Resume();
                else if (summary.Kind == JobKind.Encoding) await GrainFactory.GetGrain<IEncodeJobGrain>(summary.JobId).Resume();
                else await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(summary.JobId).Resume();
            }
            catch (Exception error)
            {
                logger.LogWarning(error, "Could not resume job {JobId}", summary.JobId);
            }
        }
    }

    /// <summary>A job on a latent dataset is refused at once when the dataset is unknown, unreadable or does not fit the model.</summary>
    private async Task CheckLatentDataset(TrainingJobSpec spec)
    {
        if (spec.Config?.Parse() is not { Data: { Source: RAE.Configuration.DataSource.Latents, Dataset: { } name } } config) return;
        var manifest = await latentData.ReadManifestAsync(name);
        LatentTrainingData.EnsureFits(manifest, config, spec.GlobalBatchSize);
    }

    private JobSummary Require(string jobId) =>
        registry.State.Jobs.TryGetValue(jobId ?? "", out var summary) ? summary
            : throw new RaeJobException($"Job '{jobId}' is unknown; 'rae jobs list' shows the jobs this cluster knows.");
}
