namespace RAE.GrainInterfaces;

/// <summary>
/// One per training job (key: job id). Assigns ranks to silos, forms the data-parallel group, drives synchronized steps,
/// commits checkpoints, records metrics and re-forms the group when a silo is lost.
/// </summary>
public interface ITrainingCoordinatorGrain : IGrainWithStringKey
{
    /// <summary>Starts the job (idempotent for the same spec). The steps run in the background; poll <see cref="GetStatus"/>.</summary>
    Task Start(TrainingJobSpec spec);

    /// <summary>
    /// Continues a persisted job after this grain was re-activated elsewhere; no-op when it runs or has ended. The lost
    /// run counts as a failed attempt; at <see cref="TrainingJobSpec.MaxAttempts"/> the job ends Failed instead.
    /// </summary>
    Task Resume();

    /// <summary><see cref="RaeJobException"/> when no job with this id was ever started.</summary>
    Task<TrainingJobStatus> GetStatus();

    /// <summary>Metrics of every recorded step from <paramref name="fromStep"/> on.</summary>
    Task<IReadOnlyList<StepMetrics>> GetMetrics(long fromStep);

    /// <summary>Persists the cancel request (a lost silo does not revive the job), ends the run and releases its devices.</summary>
    Task Cancel();
}
