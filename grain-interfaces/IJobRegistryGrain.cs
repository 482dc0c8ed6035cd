namespace RAE.GrainInterfaces;

/// <summary>
/// The cluster's front door for jobs (one instance, key <see cref="DefaultKey"/>): validates and starts submissions and
/// answers for the catalog, which lives in bounded pieces (<see cref="IJobEntryGrain"/> per job, index partitions,
/// active-jobs buckets).
/// </summary>
public interface IJobRegistryGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    /// <summary>Validates the spec, creates the job's coordinator and starts it; returns the new job id.</summary>
    Task<string> SubmitTraining(TrainingJobSpec spec);

    /// <summary>
    /// Validates the sampling spec (workload, samples, source checkpoint, configuration), creates the job's id, starts its
    /// grain and lists it; returns the new job id. <see cref="RaeJobException"/> naming the problem, and nothing is listed,
    /// when the spec is refused.
    /// </summary>
    Task<string> SubmitSampling(SamplingJobSpec spec);

    /// <summary><see cref="SubmitSampling"/> under a chosen id; <see cref="RaeJobException"/> when a job of that id exists.</summary>
    Task<string> SubmitSamplingAs(string jobId, SamplingJobSpec spec);

    /// <summary>
    /// Validates the encode spec (dataset, latent name, configuration), starts the job's grain under a new id and lists it
    /// (kind <see cref="JobKind.Encoding"/>); <see cref="RaeJobException"/> naming the problem when it is refused.
    /// </summary>
    Task<string> SubmitEncoding(EncodeJobSpec spec);

    /// <summary>The training and sampling workloads the active silos offer, and on which silos and devices.</summary>
    Task<IReadOnlyList<WorkloadOffer>> GetWorkloads();

    /// <summary>Every job, oldest first (created time, then id).</summary>
    Task<IReadOnlyList<JobSummary>> List();

    /// <summary>
    /// One page of <see cref="List()"/>: at most <paramref name="limit"/> jobs (1 to <see cref="MaxPageSize"/>) that come
    /// after the job <paramref name="afterJobId"/> (null: from the oldest); <see cref="RaeJobException"/> when that id is
    /// unknown or the limit is out of range.
    /// </summary>
    Task<IReadOnlyList<JobSummary>> List(string? afterJobId, int limit);

    const int MaxPageSize = 1000;

    /// <summary>The jobs that are pending, running or recovering, oldest first.</summary>
    Task<IReadOnlyList<JobSummary>> ListUnfinished();

    /// <summary>The job's summary; <see cref="RaeJobException"/> when the id is unknown.</summary>
    Task<JobSummary> Get(string jobId);

    Task Cancel(string jobId);

    /// <summary>Called by a job's own grain whenever its state changes.</summary>
    Task Report(JobSummary summary);
}
