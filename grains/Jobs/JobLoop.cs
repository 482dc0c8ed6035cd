using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;

namespace RAE.Grains.Jobs;

/// <summary>
/// The background loop of a job grain (training coordinator, sampling job): at most one run at a time, and a cancel
/// request the run polls. Only the grain's own turns touch it.
/// </summary>
public sealed class JobLoop(Func<Task> run)
{
    private Task? _run;

    public bool CancelRequested { get; private set; }

    public bool IsRunning => _run is { IsCompleted: false };

    /// <summary>The current run, or a completed task when none ever started.</summary>
    public Task Completion => _run ?? Task.CompletedTask;

    /// <summary>Starts a run unless one is going; <paramref name="clearCancel"/> lets a restarted run forget an earlier cancel.</summary>
    public void EnsureRunning(bool clearCancel)
    {
        if (IsRunning) return;
        if (clearCancel) CancelRequested = false;
        _run = run();
    }

    public void RequestCancel() => CancelRequested = true;
}

/// <summary>
/// Sends a job's summary to the registry in order (a report still on its way finishes before the next one is sent); a
/// registry that cannot be reached is logged, never fails the job.
/// </summary>
public sealed class JobRegistryReporter(IGrainFactory grains, ILogger logger)
{
    private Task _inFlight = Task.CompletedTask;

    /// <summary>True while a report sent with <see cref="ReportInBackground"/> is on its way.</summary>
    public bool Busy => !_inFlight.IsCompleted;

    public async Task ReportAsync(JobSummary summary)
    {
        try
        {
            await _inFlight;
            await grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).Report(summary);
        }
        catch (Exception error)
        {
            logger.LogWarning(error, "Job {JobId}: could not report to the job registry", summary.JobId);
        }
    }

    /// <summary>Sends a report without waiting for it (progress while the job runs).</summary>
    public void ReportInBackground(JobSummary summary) => _inFlight = ReportAsync(summary);
}
