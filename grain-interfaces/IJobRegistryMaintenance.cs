namespace RAE.GrainInterfaces;

/// <summary>Housekeeping the silos call on the job registry (same grain, key <see cref="IJobRegistryGrain.DefaultKey"/>).</summary>
public interface IJobRegistryMaintenance : IGrainWithStringKey
{
    /// <summary>Re-activates the coordinator of every unfinished job, so a job whose coordinator's silo died carries on.</summary>
    Task ResumeUnfinished();
}
