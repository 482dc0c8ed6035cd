using Microsoft.Extensions.Logging;

namespace RAE.Grains.Training;

public sealed partial class TrainingCoordinatorGrain
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: step {Step} failed ({Failures} in a row); re-forming the group")]
    private partial void LogStepFailed(Exception error, string jobId, long step, int failures);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: its run was lost at step {Step} (failed attempt {Attempt} of {MaxAttempts})")]
    private partial void LogRunLost(string jobId, long step, int attempt, int maxAttempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: this activation's run stops at step {Step} without ending the job: {Why}")]
    private partial void LogRunStopped(string jobId, long step, string why);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed")]
    private partial void LogJobFailed(Exception error, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: group generation {Generation} formed with {WorldSize} rank(s) at step {Step}")]
    private partial void LogGroupFormed(string jobId, int generation, int worldSize, long step);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Skipped {What} after an error")]
    private partial void LogSiloSkipped(Exception error, string what);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: the checkpoint of step {Step} fails its checksum; restoring the one before it")]
    private partial void LogCheckpointSkipped(Exception error, string jobId, long step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: its run stopped at step {Step} for the coordinator's deactivation ({Reason}); the next activation continues it")]
    private partial void LogStoppedForDeactivation(string jobId, long step, string? reason);
}
