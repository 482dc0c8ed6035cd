namespace RAE.GrainInterfaces;

/// <summary>
/// One per sampling job (key: job id): splits the samples into work units across rank grains, with per-unit seeds so the
/// result does not depend on how many ranks ran it, and never redoes a finished unit after a restart.
/// </summary>
public interface ISamplingJobGrain : IGrainWithStringKey
{
    Task Start(SamplingJobSpec spec);

    Task<SamplingJobStatus> GetStatus();

    Task Cancel();
}
