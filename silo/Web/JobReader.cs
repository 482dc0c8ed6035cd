using RAE.GrainInterfaces;

namespace RAE.Silo.Web;

/// <summary>One job as the web port shows it: its registry summary and, for the kinds that have one, its full status.</summary>
public sealed record JobView(JobSummary Summary, TrainingJobStatus? Training, SamplingJobStatus? Sampling)
{
    public string JobId => Summary.JobId;

    public EvaluationJobStatus? Evaluation { get; init; }

    public EncodeJobStatus? Encoding { get; init; }

    /// <summary>The most detailed status there is, for JSON.</summary>
    public object Status => (object?)Training ?? (object?)Sampling ?? (object?)Evaluation ?? (object?)Encoding ?? Summary;

    /// <summary>The online metrics a training job records, each with its curve (Stage 1: every reconstruction metric); none when it evaluates nothing.</summary>
    public IReadOnlyList<string> OnlineMetrics => Training?.Spec.OnlineEvaluation is { } online
        ? (Training.Spec.Workload == TrainingJobSpecs.DecoderWorkload ? online.ReconstructionMetrics : [online.Metric]).Select(EvaluationMetrics.NameOf).ToList()
        : [];

    /// <summary>The first online metric (the <see cref="MetricCurves.EvaluationCurveName"/> curve's); null when it evaluates nothing.</summary>
    public string? OnlineMetric => OnlineMetrics.FirstOrDefault();

    /// <summary>The job's canonical configuration; null when it has none of its own (a sampling job using its source checkpoint's).</summary>
    public JobConfiguration? Config => Training?.Spec.Config ?? Sampling?.Spec.Config;

    /// <summary>Training jobs record step metrics.</summary>
    public bool HasMetrics => Training is not null;

    /// <summary>Every kind but sampling commits checkpoints.</summary>
    public bool HasCheckpoints => Summary.Kind == JobKind.Training;
}

/// <summary>Reads jobs from the grains for the pages and the JSON; never writes.</summary>
public sealed class JobReader(IGrainFactory grains)
{
    private IJobRegistryGrain Registry => grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    public Task<IReadOnlyList<JobSummary>> ListAsync() => Registry.List();

    /// <summary>One page of the jobs, oldest first; <see cref="RaeJobException"/> when <paramref name="afterJobId"/> is unknown.</summary>
    public Task<IReadOnlyList<JobSummary>> ListAsync(string? afterJobId, int limit) => Registry.List(afterJobId, limit);

    /// <summary><see cref="RaeJobException"/> when the registry does not know the id.</summary>
    public async Task<JobView> GetAsync(string jobId)
    {
        var summary = await Registry.Get(jobId);
        try
        {
            return summary.Kind switch
            {
                JobKind.Training => new JobView(summary, await grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetStatus(), null),
                JobKind.Sampling => new JobView(summary, null, await grains.GetGrain<ISamplingJobGrain>(jobId).GetStatus()),
                JobKind.Evaluation => new JobView(summary, null, null) { Evaluation = await grains.GetGrain<IEvaluationJobGrain>(jobId).GetStatus() },
                JobKind.Encoding => new JobView(summary, null, null) { Encoding = await grains.GetGrain<IEncodeJobGrain>(jobId).GetStatus() },
                _ => new JobView(summary, null, null),
            };
        }
        catch (RaeJobException)
        {
            // Listed but not started yet (its grain has no state): the summary is all there is.
            return new JobView(summary, null, null);
        }
    }

    /// <summary>Step metrics from <paramref name="fromStep"/> on; empty for a job that records none.</summary>
    public async Task<IReadOnlyList<StepMetrics>> MetricsAsync(JobView job, long fromStep = 0) =>
        job.HasMetrics ? await grains.GetGrain<ITrainingCoordinatorGrain>(job.JobId).GetMetrics(fromStep) : [];

    public async Task<IReadOnlyList<CheckpointInfo>> CheckpointsAsync(JobView job) =>
        job.HasCheckpoints ? await grains.GetGrain<ICheckpointStoreGrain>(job.JobId).List() : [];
}
