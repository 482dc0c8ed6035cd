using System.Globalization;
using RAE.GrainInterfaces;

namespace RAE.Client.Cluster;

/// <summary>
/// Follows a job until it ends: a redrawn progress bar with loss and speed on a terminal, one plain line per change
/// when redirected, one JSON object per line with --json. Returns the final state.
/// </summary>
public sealed class JobWatcher(RaeClient client, CommandContext context)
{
    private const int BarWidth = 30;
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Called with every new step's metrics of a training job (for example to keep a metrics file).</summary>
    public Action<StepMetrics>? OnMetrics { get; init; }

    /// <summary>Called with every new online evaluation of a training job.</summary>
    public Action<OnlineEvaluationRecord>? OnEvaluation { get; init; }

    public async Task<JobState> WatchAsync(string jobId)
    {
        var summary = await client.GetJobAsync(jobId);
        return summary.Kind switch
        {
            JobKind.Training => await WatchTrainingAsync(jobId),
            JobKind.Evaluation => await WatchEvaluationAsync(jobId),
            JobKind.Encoding => await WatchEncodingAsync(jobId),
            _ => await WatchSamplingAsync(jobId),
        };
    }

    /// <summary>Units done until the evaluation ends, then its score (see <see cref="Commands.EvalCommand.Describe"/>).</summary>
    public async Task<JobState> WatchEvaluationAsync(string jobId)
    {
        string? lastLine = null;
        var job = client.Grains.GetGrain<IEvaluationJobGrain>(jobId);
        while (true)
        {
            var status = await job.GetStatus();
            var line = $"{jobId} {status.State,-10} {Bar(status.UnitsDone, status.UnitsTotal)} units {status.UnitsDone}/{status.UnitsTotal}";
            if (context.Json)
            {
                if (line != lastLine) context.WriteJson(new { jobId, kind = "units", status.State, status.UnitsDone, status.UnitsTotal });
            }
            else if (context.Live) Redraw(line);
            else if (line != lastLine) context.Output.WriteLine(line);
            lastLine = line;
            if (IsEnded(status.State))
            {
                Finish(jobId, status.State, status.FailureReason, status.UnitsDone, status.UnitsTotal);
                if (status.Result is { } result)
                {
                    if (context.Json) context.WriteJson(new { jobId, kind = "result", result.Metric, result.Value, result.SampleImages, result.ReferenceImages, result.ReferenceStatistics, result.ReferenceStatisticsReused });
                    else context.Output.WriteLine(Commands.EvalCommand.Describe(status));
                }
                return status.State;
            }
            await Task.Delay(PollInterval, context.CancellationToken);
        }
    }

    public async Task<JobState> WatchTrainingAsync(string jobId)
    {
        long nextMetricsStep = 0;
        var evaluationsSeen = 0;
        string? lastLine = null;
        while (true)
        {
            var status = await client.GetTrainingStatusAsync(jobId);
            var evaluations = status.Evaluations.Skip(evaluationsSeen).ToList();
            evaluationsSeen = status.Evaluations.Count;
            var metrics = await client.GetMetricsAsync(jobId, nextMetricsStep);
            foreach (var step in metrics) OnMetrics?.Invoke(step);
            if (metrics.Count > 0) nextMetricsStep = metrics[^1].Step + 1;
            var last = metrics.Count > 0 ? metrics[^1] : status.LastMetrics;
            if (context.Json)
            {
                foreach (var step in metrics) context.WriteJson(new { jobId, kind = "step", step.Step, step.Loss, step.GradientNorm, step.LearningRate, step.StepSeconds, step.SamplesPerSecondPerRank, step.Ranks });
                foreach (var evaluation in evaluations) context.WriteJson(new { jobId, kind = "eval", evaluation.Step, evaluation.Metric, evaluation.Value, evaluation.Images, evaluation.Error });
            }
            else
            {
                foreach (var evaluation in evaluations)
                {
                    if (context.Live) context.Output.WriteLine();
                    context.Output.WriteLine(EvaluationLine(jobId, evaluation));
                }
                var line = TrainingLine(status, last);
                if (context.Live) Redraw(line);
                else if (line != lastLine) context.Output.WriteLine(line);
                lastLine = line;
            }
            foreach (var evaluation in evaluations) OnEvaluation?.Invoke(evaluation);
            if (IsEnded(status.State))
            {
                Finish(jobId, status.State, status.FailureReason, status.Step, status.Spec.Steps);
                return status.State;
            }
            await Task.Delay(PollInterval, context.CancellationToken);
        }
    }

    public async Task<JobState> WatchSamplingAsync(string jobId)
    {
        string? lastLine = null;
        while (true)
        {
            var status = await client.GetSamplingStatusAsync(jobId);
            var line = $"{jobId} {status.State,-10} {Bar(status.UnitsDone, status.UnitsTotal)} units {status.UnitsDone}/{status.UnitsTotal} ({status.Spec.Samples} samples)";
            if (context.Json)
            {
                if (line != lastLine) context.WriteJson(new { jobId, kind = "units", status.State, status.UnitsDone, status.UnitsTotal });
            }
            else if (context.Live) Redraw(line);
            else if (line != lastLine) context.Output.WriteLine(line);
            lastLine = line;
            if (IsEnded(status.State))
            {
                Finish(jobId, status.State, status.FailureReason, status.UnitsDone, status.UnitsTotal);
                if (status.OutputLocation is not null && !context.Json) context.Output.WriteLine($"output: {status.OutputLocation}");
                return status.State;
            }
            await Task.Delay(PollInterval, context.CancellationToken);
        }
    }

    public async Task<JobState> WatchEncodingAsync(string jobId)
    {
        string? lastLine = null;
        while (true)
        {
            var status = await client.GetEncodeStatusAsync(jobId);
            var line = EncodingLine(status);
            if (context.Json)
            {
                if (line != lastLine)
                    context.WriteJson(new { jobId, kind = "shards", status.State, status.ShardsDone, status.ShardsTotal, status.ImagesDone, status.ImagesPerSecond, skipped = status.Skipped.Count });
            }
            else if (context.Live) Redraw(line);
            else if (line != lastLine) context.Output.WriteLine(line);
            lastLine = line;
            if (IsEnded(status.State))
            {
                Finish(jobId, status.State, status.FailureReason, status.ShardsDone, status.ShardsTotal);
                if (!context.Json)
                {
                    foreach (var skipped in status.Skipped) context.Output.WriteLine($"skipped {skipped.Name}: {skipped.Reason}");
                    if (status.OutputLocation is not null) context.Output.WriteLine($"output: {status.OutputLocation}");
                }
                return status.State;
            }
            await Task.Delay(PollInterval, context.CancellationToken);
        }
    }

    public static string EncodingLine(EncodeJobStatus status) =>
        string.Create(Invariant, $"{status.JobId} {status.State,-10} {Bar(status.ShardsDone, status.ShardsTotal)} shards {status.ShardsDone}/{status.ShardsTotal}  images {status.ImagesDone}/{status.ImagesTotal}  {status.ImagesPerSecond:F1} img/s  skipped {status.Skipped.Count}");

    public static bool IsEnded(JobState state) => state is JobState.Completed or JobState.Failed or JobState.Cancelled;

    /// <summary>The Stage 1 values shown on the watch line when a step reports them (all of them are in the JSON and the metrics).</summary>
    private static readonly string[] WatchedDetails = ["lambda", "disc_loss", "disc_acc", "logits_real", "logits_fake"];

    private static string TrainingLine(TrainingJobStatus status, StepMetrics? last)
    {
        var line = $"{status.JobId} {status.State,-10} {Bar(status.Step, status.Spec.Steps)} step {status.Step}/{status.Spec.Steps}";
        if (last is not null)
        {
            var speed = last.SamplesPerSecondPerRank.Sum();
            line += string.Create(Invariant, $"  loss {last.Loss:F4}  grad norm {last.GradientNorm:F3}  lr {last.LearningRate:E2}  {speed:F1} img/s  {status.Ranks.Count} rank(s)");
            foreach (var key in WatchedDetails)
                if (last.Details?.TryGetValue(key, out var value) == true) line += string.Create(Invariant, $"  {key} {value:G4}");
        }
        if (status.Recoveries > 0) line += $"  recoveries {status.Recoveries}";
        return line;
    }

    /// <summary>One online evaluation as <c>rae jobs watch</c> and <c>rae jobs show</c> print it.</summary>
    public static string EvaluationLine(string jobId, OnlineEvaluationRecord evaluation) => evaluation.Error is { } error
        ? $"{jobId} eval step {evaluation.Step}: {evaluation.Metric} failed: {error}"
        : string.Create(Invariant, $"{jobId} eval step {evaluation.Step}: {evaluation.Metric} {evaluation.Value:G6} ({evaluation.Images} images, {evaluation.Seconds:F1} s)");

    public static string Bar(long done, long total)
    {
        var fraction = total <= 0 ? 0 : Math.Clamp((double)done / total, 0, 1);
        var filled = (int)Math.Round(fraction * BarWidth);
        return "[" + new string('#', filled) + new string('.', BarWidth - filled) + "] " + string.Create(Invariant, $"{fraction * 100,3:F0}%");
    }

    private void Redraw(string line)
    {
        var width = Math.Max(20, SafeWindowWidth() - 1);
        context.Output.Write("\r" + (line.Length > width ? line[..width] : line.PadRight(width)));
    }

    private void Finish(string jobId, JobState state, string? reason, long done, long total)
    {
        if (context.Json)
        {
            context.WriteJson(new { jobId, kind = "end", state, done, total, reason });
            return;
        }
        if (context.Live) context.Output.WriteLine();
        var line = $"{jobId} {state.ToString().ToLowerInvariant()} at {done}/{total}";
        if (reason is not null) line += $": {reason}";
        (state == JobState.Completed ? context.Output : context.Error).WriteLine(line);
    }

    private static int SafeWindowWidth()
    {
        try
        {
            return Console.WindowWidth > 0 ? Console.WindowWidth : 120;
        }
        catch (IOException)
        {
            return 120;
        }
    }
}
