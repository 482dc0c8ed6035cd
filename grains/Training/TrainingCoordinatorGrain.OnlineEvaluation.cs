using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;

namespace RAE.Grains.Training;

/// <summary>
/// Online evaluation. Stage 2: at an evaluation step the coordinator has committed that step's checkpoint and, before the
/// next step, runs a sampling job from it (EMA weights, the checkpoint's config, labels "equal": what <c>rae sample
/// --from-job</c> runs) and an evaluation job of the samples against the reference dataset's cached statistics. Both are
/// ordinary jobs with their own workers and dedicated threads, so no tensor work runs on this grain's turns and the ranks'
/// replicas, optimizer state and data order are untouched: the loss curve is the same with evaluation on or off. Their ids
/// derive from the job and step, so a coordinator resumed after a crash continues (not redoes) the same jobs; the step's
/// record is persisted once it is known. Stage 1: rank 0 scores reconstructions on its worker thread and reports them in
/// the step's details, which are recorded here.
/// </summary>
public sealed partial class TrainingCoordinatorGrain
{
    private static readonly TimeSpan ChildJobPoll = TimeSpan.FromMilliseconds(250);

    public static string OnlineSamplingJobId(string trainingJobId, long step) => $"{trainingJobId}-eval-{step:D7}";

    public static string OnlineEvaluationJobId(string trainingJobId, long step, EvaluationMetric metric) =>
        $"{OnlineSamplingJobId(trainingJobId, step)}-{EvaluationMetrics.NameOf(metric).Replace('_', '-')}";

    /// <summary>Whether the coordinator samples at <paramref name="step"/> (a Stage 2 job with online evaluation).</summary>
    private static bool SamplesOnline(TrainingJobSpec spec, long step) =>
        spec.OnlineEvaluation is { } online && spec.Workload != TrainingJobSpecs.DecoderWorkload && online.IsDue(step);

    /// <summary>Runs the Stage 2 evaluation of the current step when it is due, committed and not yet recorded.</summary>
    private async Task EvaluateOnlineIfDueAsync(TrainingJobSpec spec)
    {
        var step = State.Step;
        if (!SamplesOnline(spec, step) || State.LastCheckpointStep != step || Cancelling) return;
        if (State.Evaluations.Any(e => e.Step == step)) return;
        var online = spec.OnlineEvaluation!;
        var clock = Stopwatch.StartNew();
        var samplingId = OnlineSamplingJobId(JobId, step);
        var evaluationId = OnlineEvaluationJobId(JobId, step, online.Metric);
        OnlineEvaluationRecord record;
        try
        {
            var sampling = await RunSamplingAsync(samplingId, OnlineSamplingSpec(JobId, step, online));
            var reference = online.ReferenceDataset ?? await LatentSourceDatasetAsync(spec);
            var evaluation = await RunEvaluationAsync(evaluationId, OnlineEvaluationJobSpec(samplingId, reference, online));
            var result = evaluation.Result!;
            record = new OnlineEvaluationRecord(step, result.Metric, result.Value, sampling.SamplesDone, samplingId, evaluationId,
                clock.Elapsed.TotalSeconds, DateTimeOffset.UtcNow);
            LogOnlineEvaluation(JobId, step, result.Metric, result.Value);
        }
        catch (Exception error) when (!Cancelling && error is RaeJobException or OnlineEvaluationFailedException)
        {
            // A bad reference or a failed child job is the evaluation's problem, not the training's: recorded, and training goes on.
            record = new OnlineEvaluationRecord(step, EvaluationMetrics.NameOf(online.Metric), double.NaN, 0, samplingId, evaluationId,
                clock.Elapsed.TotalSeconds, DateTimeOffset.UtcNow, error.Message);
            LogOnlineEvaluationFailed(error, JobId, step);
        }
        if (Cancelling || _deactivating) return;
        State.Evaluations.RemoveAll(e => e.Step == step);
        State.Evaluations.Add(record);
        await PersistAndReportAsync();
    }

    /// <summary>The sampling job of an online evaluation: the offline one from the training job's checkpoint at <paramref name="step"/>.</summary>
    public static SamplingJobSpec OnlineSamplingSpec(string trainingJobId, long step, OnlineEvaluationSpec online) =>
        SamplingJobSpecs.FromTrainingJob(trainingJobId, step) with
        {
            Samples = online.Samples,
            UnitSize = Math.Min(online.UnitSize, online.Samples),
            Seed = online.Seed,
            Labels = "equal",
            UnitDelay = online.UnitDelay,
        };

    public static EvaluationJobSpec OnlineEvaluationJobSpec(string samplingJobId, string referenceDataset, OnlineEvaluationSpec online) => new()
    {
        Metric = online.Metric,
        Samples = new EvaluationInput(EvaluationInputKind.SamplingJob, samplingJobId),
        Reference = new EvaluationInput(EvaluationInputKind.Dataset, referenceDataset),
        UnitSize = online.UnitSize,
        InceptionWeightsPath = online.InceptionWeightsPath,
        UnitDelay = online.UnitDelay,
    };

    private async Task<string> LatentSourceDatasetAsync(TrainingJobSpec spec)
    {
        var latents = spec.Config?.Parse().Data?.Dataset
            ?? throw new RaeJobException("online evaluation has no reference dataset: set eval.data_path");
        return (await GrainFactory.GetGrain<ILatentDatasetInfoGrain>(latents).Describe()).SourceDataset;
    }

    private async Task<SamplingJobStatus> RunSamplingAsync(string jobId, SamplingJobSpec spec)
    {
        var job = GrainFactory.GetGrain<ISamplingJobGrain>(jobId);
        if (await TryStatusAsync(job.GetStatus) is null) await job.Start(spec);
        else await job.Resume();
        while (true)
        {
            var status = await job.GetStatus();
            if (status.State == JobState.Completed) return status;
            if (status.State is JobState.Failed or JobState.Cancelled)
                throw new OnlineEvaluationFailedException($"online sampling job {jobId} ended {status.State}: {status.FailureReason}");
            if (Cancelling)
            {
                await job.Cancel();
                throw new OperationCanceledException($"training job {JobId} was cancelled during its online evaluation");
            }
            // The next activation continues the same child job (its id derives from the job and step).
            if (_deactivating) throw new OperationCanceledException($"training job {JobId}'s coordinator is deactivating during its online evaluation");
            DelayDeactivation(TimeSpan.FromMinutes(10));
            await Task.Delay(ChildJobPoll);
        }
    }

    private async Task<EvaluationJobStatus> RunEvaluationAsync(string jobId, EvaluationJobSpec spec)
    {
        var job = GrainFactory.GetGrain<IEvaluationJobGrain>(jobId);
        if (await TryStatusAsync(job.GetStatus) is null) await job.Start(spec);
        else await job.Resume();
        while (true)
        {
            var status = await job.GetStatus();
            if (status.State == JobState.Completed && status.Result is not null) return status;
            if (status.State is JobState.Failed or JobState.Cancelled or JobState.Completed)
                throw new OnlineEvaluationFailedException($"online evaluation job {jobId} ended {status.State}: {status.FailureReason}");
            if (Cancelling)
            {
                await job.Cancel();
                throw new OperationCanceledException($"training job {JobId} was cancelled during its online evaluation");
            }
            // The next activation continues the same child job (its id derives from the job and step).
            if (_deactivating) throw new OperationCanceledException($"training job {JobId}'s coordinator is deactivating during its online evaluation");
            DelayDeactivation(TimeSpan.FromMinutes(10));
            await Task.Delay(ChildJobPoll);
        }
    }

    /// <summary>The job's status, or null when it was never started.</summary>
    private static async Task<T?> TryStatusAsync<T>(Func<Task<T>> status) where T : class
    {
        try
        {
            return await status();
        }
        catch (RaeJobException)
        {
            return null;
        }
    }

    /// <summary>The reconstruction scores a Stage 1 worker reported in the step's details, recorded as the step's evaluations.</summary>
    private void RecordWorkerEvaluations(TrainingJobSpec spec, StepMetrics metrics)
    {
        if (spec.OnlineEvaluation is not { } online || spec.Workload != TrainingJobSpecs.DecoderWorkload || metrics.Details is not { } details) return;
        State.Evaluations.RemoveAll(e => e.Step >= metrics.Step);
        foreach (var metric in online.ReconstructionMetrics)
            if (details.TryGetValue(OnlineEvaluationSpec.DetailKey(metric), out var value))
                State.Evaluations.Add(new OnlineEvaluationRecord(metrics.Step, EvaluationMetrics.NameOf(metric), value, online.Samples, null, null, 0, metrics.CompletedAt));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: online evaluation at step {Step}: {Metric} = {Value}")]
    private partial void LogOnlineEvaluation(string jobId, long step, string metric, double value);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: online evaluation at step {Step} failed; training goes on")]
    private partial void LogOnlineEvaluationFailed(Exception error, string jobId, long step);
}

/// <summary>A child job of an online evaluation ended without a score.</summary>
public sealed class OnlineEvaluationFailedException(string message) : Exception(message);
