using Orleans.Concurrency;

namespace RAE.GrainInterfaces;

/// <summary>A worker of one device that runs the units of unit jobs (sampling, shard encoding, evaluation).</summary>
public interface IUnitWorkerGrain : IGrainWithStringKey
{
    /// <summary>
    /// Cancels the units of <paramref name="jobId"/> this worker is running: each stops at its next check (a sampler step,
    /// an encoder or evaluation batch) with an <see cref="OperationCanceledException"/> and writes nothing; a unit already
    /// writing its files finishes. Answered at once, while a unit runs.
    /// </summary>
    [AlwaysInterleave]
    Task CancelUnits(string jobId);
}
