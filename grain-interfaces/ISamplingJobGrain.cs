namespace RAE.GrainInterfaces;

/// <summary>
/// One per sampling job (key: job id): splits the samples into work units across rank grains, with per-unit seeds so the
/// result does not depend on how many ranks ran it, and never redoes a finished unit after a restart.
/// </summary>
public interface ISamplingJobGrain : IContinuableJobGrain
{
    Task Start(SamplingJobSpec spec);

    Task<SamplingJobStatus> GetStatus();

    /// <summary>Stops handing out units, waits for the units in flight (they are kept) and marks the job cancelled.</summary>
    Task Cancel();

    /// <summary>Continues an unfinished or cancelled job with the units not yet done; a finished unit is never redone.</summary>
    Task Resume();
}
