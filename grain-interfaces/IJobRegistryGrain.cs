namespace RAE.GrainInterfaces;

/// <summary>The cluster's catalog of jobs (one instance, key <see cref="DefaultKey"/>). Validates and starts submissions.</summary>
public interface IJobRegistryGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    /// <summary>Validates the spec, creates the job's coordinator and starts it; returns the new job id.</summary>
    Task<string> SubmitTraining(TrainingJobSpec spec);

    Task<IReadOnlyList<JobSummary>> List();

    /// <summary>The job's summary; <see cref="RaeJobException"/> when the id is unknown.</summary>
    Task<JobSummary> Get(string jobId);

    Task Cancel(string jobId);

    /// <summary>Called by a job's own grain whenever its state changes.</summary>
    Task Report(JobSummary summary);
}
