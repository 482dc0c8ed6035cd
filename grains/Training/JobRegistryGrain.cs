using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Jobs;
using RAE.Grains.Placement;
using RAE.Grains.Sampling;
using RAE.Grains.Workers;

namespace RAE.Grains.Training;

/// <summary>
/// The registry's former single state: every job's summary in one dictionary, rewritten on every change. Read only to
/// carry a deployed cluster's jobs over into the partitioned catalog, then cleared.
/// </summary>
[GenerateSerializer]
public sealed class JobRegistryState
{
    [Id(0)] public Dictionary<string, JobSummary> Jobs { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// The front door for jobs: validates submissions, creates ids and starts jobs. The catalog itself is partitioned so that
/// no write grows with the number of jobs: one <see cref="IJobEntryGrain"/> per job, index partitions of bounded size
/// (<see cref="IJobIndexGrain"/>) for listing, and hash buckets of the unfinished jobs (<see cref="IActiveJobsGrain"/>).
/// Silos call <see cref="IJobRegistryMaintenance.ResumeUnfinished"/> now and then, which re-activates the grain of every
/// unfinished job wherever Orleans places it (after the silo that held it went away).
/// </summary>
[Reentrant]
public sealed class JobRegistryGrain(
    [PersistentState("registry", RaeStorage.GrainStateProvider)] IPersistentState<JobRegistryState> registry,
    IGrainFactory grainFactory,
    IEnumerable<IRankWorkerFactory> workerFactories,
    LatentTrainingData latentData,
    ILogger<JobRegistryGrain> logger) : Grain, IJobRegistryGrain, IJobRegistryMaintenance
{
    /// <summary>The sampling workloads this cluster's sampling job grain implements.</summary>
    public static readonly IReadOnlyList<string> SamplingWorkloads = [SamplingPlan.Workload];

    /// <summary>How many old summaries are carried over at once when the former single state is migrated.</summary>
    private const int MigrationBatch = 16;

    private readonly JobIndexPager _pager = new(number => grainFactory.GetGrain<IJobIndexPartitionGrain>(number).GetEntries());

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (registry.State.Jobs.Count == 0) return;
        var jobs = registry.State.Jobs.Values.OrderBy(j => j.CreatedAt).ThenBy(j => j.JobId, StringComparer.Ordinal).ToList();
        logger.LogInformation("Moving {Count} jobs from the registry's single state into per-job entries and index partitions", jobs.Count);
        foreach (var batch in jobs.Chunk(MigrationBatch))
            await Task.WhenAll(batch.Select(job => Entry(job.JobId).Import(job)));
        await registry.ClearStateAsync();
        logger.LogInformation("Moved {Count} jobs into the partitioned catalog; the registry's single state is cleared", jobs.Count);
    }

    public async Task<string> SubmitTraining(TrainingJobSpec spec)
    {
        TrainingSpecValidator.Validate(spec, workerFactories.Select(f => f.Workload));
        await CheckLatentDataset(spec);
        var jobId = $"train-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}";
        var now = DateTimeOffset.UtcNow;
        await Entry(jobId).Record(new JobSummary(jobId, JobKind.Training, JobState.Pending, 0, spec.Steps, now, now, null));
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
        if (await Entry(jobId).Get() is { } existing)
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
        if (await Entry(jobId).Get() is null)
        {
            // The grain normally reports itself while it starts; list the job even if that report was lost.
            var now = DateTimeOffset.UtcNow;
            var units = spec.UnitSize > 0 ? (spec.Samples + spec.UnitSize - 1) / spec.UnitSize : 0;
            await Entry(jobId).Record(new JobSummary(jobId, JobKind.Sampling, JobState.Pending, 0, units, now, now, null));
        }
        return jobId;
    }

    public async Task<string> SubmitEncoding(EncodeJobSpec spec)
    {
        if (spec is null) throw new RaeJobException("An encode job needs a spec; none was given.");
        var jobId = $"encode-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..8]}";
        // The job's grain checks the dataset, the latent name and the configuration before it persists anything.
        await GrainFactory.GetGrain<IEncodeJobGrain>(jobId).Start(spec);
        if (await Entry(jobId).Get() is null)
        {
            var now = DateTimeOffset.UtcNow;
            await Entry(jobId).Record(new JobSummary(jobId, JobKind.Encoding, JobState.Pending, 0, 0, now, now, null));
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

    public async Task<IReadOnlyList<JobSummary>> List() => await SummariesOf(await IndexedJobsInOrder());

    public async Task<IReadOnlyList<JobSummary>> List(string? afterJobId, int limit)
    {
        if (limit is < 1 or > IJobRegistryGrain.MaxPageSize)
            throw new RaeJobException($"A page of jobs holds 1 to {IJobRegistryGrain.MaxPageSize} jobs; {limit} was asked for.");
        JobIndexEntry? cursor = null;
        if (afterJobId is not null)
        {
            var after = await Require(afterJobId);
            cursor = new JobIndexEntry(after.JobId, after.CreatedAt);
        }
        var partitions = await GrainFactory.GetGrain<IJobIndexGrain>(IJobIndexGrain.DefaultKey).PartitionCount();
        return await SummariesOf(await _pager.PageAsync(partitions, cursor, limit));
    }

    public async Task<IReadOnlyList<JobSummary>> ListUnfinished()
    {
        var active = await ActiveJobs();
        var summaries = await Task.WhenAll(active.Select(job => Entry(job.JobId).Get()));
        return summaries.OfType<JobSummary>().Where(s => JobEntryGrain.IsUnfinished(s.State)).OrderBy(s => s.CreatedAt).ThenBy(s => s.JobId, StringComparer.Ordinal).ToList();
    }

    public Task<JobSummary> Get(string jobId) => Require(jobId);

    public async Task Cancel(string jobId)
    {
        var summary = await Require(jobId);
        if (summary.Kind == JobKind.Training) await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(jobId).Cancel();
        else if (summary.Kind == JobKind.Evaluation) await GrainFactory.GetGrain<IEvaluationJobGrain>(jobId).Cancel();
        else if (summary.Kind == JobKind.Encoding) await GrainFactory.GetGrain<IEncodeJobGrain>(jobId).Cancel();
        else await GrainFactory.GetGrain<ISamplingJobGrain>(jobId).Cancel();
    }

    public async Task Report(JobSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        if (string.IsNullOrWhiteSpace(summary.JobId)) throw new RaeJobException("A job report needs the job's id; none was given.");
        await Entry(summary.JobId).Record(summary);
    }

    public async Task ResumeUnfinished()
    {
        foreach (var job in await ActiveJobs())
        {
            try
            {
                if (await Entry(job.JobId).Get() is { } summary && !JobEntryGrain.IsUnfinished(summary.State))
                {
                    // Its entry was written as ended but the crash came before it left its bucket.
                    await GrainFactory.GetGrain<IActiveJobsGrain>(JobEntryGrain.BucketOf(job.JobId)).Remove(job.JobId);
                    continue;
                }
                // Never Resume for unit jobs: the list can lag a cancel or failure the job has just made, and Resume revives those.
                if (job.Kind == JobKind.Sampling) await GrainFactory.GetGrain<ISamplingJobGrain>(job.JobId).ContinueIfUnfinished();
                else if (job.Kind == JobKind.Evaluation) await GrainFactory.GetGrain<IEvaluationJobGrain>(job.JobId).ContinueIfUnfinished();
                else if (job.Kind == JobKind.Encoding) await GrainFactory.GetGrain<IEncodeJobGrain>(job.JobId).ContinueIfUnfinished();
                else await GrainFactory.GetGrain<ITrainingCoordinatorGrain>(job.JobId).Resume();
            }
            catch (Exception error)
            {
                logger.LogWarning(error, "Could not resume job {JobId}", job.JobId);
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

    private IJobEntryGrain Entry(string jobId) => GrainFactory.GetGrain<IJobEntryGrain>(jobId);

    private async Task<JobSummary> Require(string? jobId) =>
        !string.IsNullOrWhiteSpace(jobId) && await Entry(jobId).Get() is { } summary ? summary : throw UnknownJob(jobId);

    private static RaeJobException UnknownJob(string? jobId) =>
        new($"Job '{jobId}' is unknown; 'rae jobs list' shows the jobs this cluster knows.");

    /// <summary>Every indexed job once (an interrupted append may have listed one twice), by created time then id.</summary>
    private async Task<List<JobIndexEntry>> IndexedJobsInOrder()
    {
        var partitions = await GrainFactory.GetGrain<IJobIndexGrain>(IJobIndexGrain.DefaultKey).PartitionCount();
        var pages = await Task.WhenAll(Enumerable.Range(0, partitions).Select(number => GrainFactory.GetGrain<IJobIndexPartitionGrain>(number).GetEntries()));
        return pages.SelectMany(page => page)
            .DistinctBy(entry => entry.JobId, StringComparer.Ordinal)
            .OrderBy(entry => entry.CreatedAt).ThenBy(entry => entry.JobId, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>The current summaries of the listed jobs, in the given order (an id listed before its entry was written is left out).</summary>
    private async Task<IReadOnlyList<JobSummary>> SummariesOf(IEnumerable<JobIndexEntry> entries)
    {
        var summaries = await Task.WhenAll(entries.Select(entry => Entry(entry.JobId).Get()));
        return summaries.OfType<JobSummary>().ToList();
    }

    private async Task<IReadOnlyList<ActiveJob>> ActiveJobs()
    {
        var buckets = await Task.WhenAll(Enumerable.Range(0, JobEntryGrain.ActiveBuckets).Select(number => GrainFactory.GetGrain<IActiveJobsGrain>(number).List()));
        return buckets.SelectMany(bucket => bucket).ToList();
    }
}
