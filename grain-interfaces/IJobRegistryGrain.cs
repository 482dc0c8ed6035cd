namespace RAE.GrainInterfaces;

/// <summary>The cluster's catalog of jobs (one instance, key <see cref="DefaultKey"/>). Validates and starts submissions.</summary>
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

    Task<IReadOnlyList<JobSummary>> List();

    /// <summary>The job's summary; <see cref="RaeJobException"/> when the id is unknown.</summary>
    Task<JobSummary> Get(string jobId);

    Task Cancel(string jobId);

    /// <summary>Called by a job's own grain whenever its state changes.</summary>
    Task Report(JobSummary summary);
}
