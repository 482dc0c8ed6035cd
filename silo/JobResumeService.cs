using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;

namespace RAE.Silo;

/// <summary>
/// Every few seconds asks the job registry to re-activate the coordinators of unfinished jobs. Every silo runs it, so
/// a job whose coordinator (or the registry itself) lived on a silo that died carries on from its persisted state.
/// </summary>
public sealed class JobResumeService(IGrainFactory grainFactory, ILogger<JobResumeService> logger) : BackgroundService
{
    public static TimeSpan Period { get; set; } = TimeSpan.FromSeconds(3);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await grainFactory.GetGrain<IJobRegistryMaintenance>(IJobRegistryGrain.DefaultKey).ResumeUnfinished().WaitAsync(Period * 3, stoppingToken);
            }
            catch (Exception error) when (error is not OperationCanceledException)
            {
                logger.LogDebug(error, "Resuming unfinished jobs failed; will try again");
            }
        }
    }
}
