namespace RAE.GrainInterfaces;

/// <summary>A unit job (sampling, evaluation, encoding) that the cluster's resume service keeps going after a silo loss.</summary>
public interface IContinuableJobGrain : IGrainWithStringKey
{
    /// <summary>
    /// Continues the job only if its own state is still unfinished (pending or running) and its loop is not running;
    /// never revives a job that was cancelled or failed, however recently (that is <c>Resume</c>, a user's request). The
    /// resume service calls it every few seconds from the registry's list, which can lag the job's own state.
    /// </summary>
    Task ContinueIfUnfinished();
}
