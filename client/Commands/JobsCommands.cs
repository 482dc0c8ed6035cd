using System.CommandLine;
using System.Globalization;
using RAE.Client.Cluster;
using RAE.Configuration;
using RAE.GrainInterfaces;

namespace RAE.Client.Commands;

/// <summary>`rae jobs list`: every job the registry knows, oldest first; `--limit`/`--after` page through them.</summary>
public sealed class JobsListCommand : ClusterCommand
{
    public override string Name => "jobs list";

    public override string Summary => "The cluster's jobs with state and progress";

    private readonly Option<int?> _limit = PageSizeOption();

    private readonly Option<string?> _after = new("--after") { HelpName = "JOB", Description = "Start after this job (the last one of the previous page)" };

    protected override IEnumerable<Symbol> OwnSymbols => [_limit, _after];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var limit = parsed.GetValue(_limit);
        var after = parsed.GetValue(_after);
        var paged = limit is not null || after is not null;
        var pageSize = limit ?? IJobRegistryGrain.MaxPageSize;
        return async (client, ctx) =>
        {
            var jobs = paged ? await client.ListJobsAsync(after, pageSize) : await client.ListJobsAsync();
            if (ctx.Json)
            {
                ctx.WriteJson(jobs);
                return Ok;
            }
            if (jobs.Count == 0) ctx.Output.WriteLine(after is null ? "no jobs" : $"no jobs after {after}");
            else ctx.Output.WriteLine($"{"job",-36} {"kind",-9} {"state",-10} {"progress",-14} {"updated",-20}");
            foreach (var job in jobs)
            {
                ctx.Output.WriteLine($"{job.JobId,-36} {job.Kind,-9} {job.State,-10} {job.Progress + "/" + job.Total,-14} {job.UpdatedAt.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),-20}");
                if (job.FailureReason is not null) ctx.Output.WriteLine($"  {job.FailureReason}");
            }
            if (paged && jobs.Count == pageSize) ctx.Output.WriteLine($"next page: rae jobs list --limit {pageSize} --after {jobs[^1].JobId}");
            return Ok;
        };
    }

    private static Option<int?> PageSizeOption()
    {
        var option = new Option<int?>("--limit") { HelpName = "N", Description = $"At most N jobs (1 to {IJobRegistryGrain.MaxPageSize}) [default: all]" };
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is { } value && value is < 1 or > IJobRegistryGrain.MaxPageSize)
                result.AddError($"--limit expects 1 to {IJobRegistryGrain.MaxPageSize} jobs, got {value}");
        });
        return option;
    }
}

/// <summary>`rae jobs show ID`: the job's full status (exit 1 naming the id when it is unknown).</summary>
public sealed class JobsShowCommand : ClusterCommand
{
    public override string Name => "jobs show";

    private readonly Argument<string> _jobId = JobIdArgument();

    public override string Summary => "One job's status, ranks, last metrics and checkpoint";

    protected override IEnumerable<Symbol> OwnSymbols => [_jobId];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var jobId = parsed.GetRequiredValue(_jobId);
        return async (client, ctx) =>
        {
            var summary = await client.GetJobAsync(jobId);
            if (summary.Kind == JobKind.Evaluation)
            {
                var evaluation = await client.Grains.GetGrain<IEvaluationJobGrain>(jobId).GetStatus();
                if (ctx.Json) ctx.WriteJson(evaluation);
                else PrintEvaluation(ctx.Output, evaluation);
                return Ok;
            }
            if (summary.Kind == JobKind.Encoding)
            {
                var encoding = await client.GetEncodeStatusAsync(jobId);
                if (ctx.Json) ctx.WriteJson(encoding);
                else PrintEncoding(ctx.Output, encoding);
                return Ok;
            }
            if (summary.Kind == JobKind.Sampling)
            {
                var sampling = await client.GetSamplingStatusAsync(jobId);
                if (ctx.Json) ctx.WriteJson(sampling);
                else PrintSampling(ctx.Output, sampling);
                return Ok;
            }
            var status = await client.GetTrainingStatusAsync(jobId);
            if (ctx.Json) ctx.WriteJson(status);
            else PrintTraining(ctx.Output, status);
            return Ok;
        };
    }

    private static void PrintTraining(TextWriter output, TrainingJobStatus status)
    {
        var invariant = CultureInfo.InvariantCulture;
        output.WriteLine($"job        {status.JobId} (training, {status.Spec.Workload})");
        output.WriteLine($"state      {status.State}{(status.FailureReason is null ? "" : ": " + status.FailureReason)}");
        output.WriteLine($"progress   {JobWatcher.Bar(status.Step, status.Spec.Steps)} step {status.Step}/{status.Spec.Steps}");
        if (status.QueuePosition is { } place)
            output.WriteLine($"queued     place {place} in the device queue, waiting for {status.Spec.MinimumRanks} free device(s)");
        output.WriteLine($"batch      global {status.Spec.GlobalBatchSize}, accumulation {status.Spec.GradientAccumulation}, {status.Spec.DescribeRanks()} rank(s) wanted");
        output.WriteLine($"group      generation {status.GroupGeneration}, recoveries {status.Recoveries}{(status.RestoredFromStep is { } restored ? $", restored from step {restored}" : "")}");
        foreach (var (slot, index) in status.Ranks.Select((slot, index) => (slot, index)))
            output.WriteLine($"  rank {index}: {slot.Device} on {slot.SiloAddress}");
        output.WriteLine($"checkpoint {(status.LastCheckpointStep is { } step ? $"step {step}" : "none yet")}");
        if (status.LastMetrics is { } m)
            output.WriteLine(string.Create(invariant, $"last step  {m.Step}: loss {m.Loss:F5}, grad norm {m.GradientNorm:F4}, lr {m.LearningRate:E3}, {m.StepSeconds:F3} s, {m.SamplesPerSecondPerRank.Sum():F1} img/s"));
        if (status.Spec.OnlineEvaluation is { } online)
        {
            output.WriteLine($"evaluation every {online.Interval} steps, {status.Evaluations.Count} so far");
            foreach (var evaluation in status.Evaluations) output.WriteLine("  " + JobWatcher.EvaluationLine(status.JobId, evaluation));
        }
        output.WriteLine($"created    {status.CreatedAt:u}, updated {status.UpdatedAt:u}");
    }

    private static void PrintEvaluation(TextWriter output, EvaluationJobStatus status)
    {
        output.WriteLine($"job        {status.JobId} (evaluation, {EvaluationMetrics.NameOf(status.Spec.Metric)})");
        output.WriteLine($"state      {status.State}{(status.FailureReason is null ? "" : ": " + status.FailureReason)}");
        output.WriteLine($"progress   {JobWatcher.Bar(status.UnitsDone, status.UnitsTotal)} units {status.UnitsDone}/{status.UnitsTotal}, resumptions {status.Resumptions}");
        output.WriteLine($"samples    {status.Spec.Samples}");
        output.WriteLine($"reference  {status.Spec.Reference}");
        output.WriteLine($"result     {(status.Result is null ? "not yet" : EvalCommand.Describe(status))}");
    }

    private static void PrintEncoding(TextWriter output, EncodeJobStatus status)
    {
        output.WriteLine($"job        {status.JobId} (encode, dataset {status.Spec.Dataset} -> latents/{status.Spec.LatentName})");
        output.WriteLine($"state      {status.State}{(status.FailureReason is null ? "" : ": " + status.FailureReason)}");
        output.WriteLine($"progress   {JobWatcher.Bar(status.ShardsDone, status.ShardsTotal)} shards {status.ShardsDone}/{status.ShardsTotal}, images {status.ImagesDone}/{status.ImagesTotal}");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"speed      {status.ImagesPerSecond:F1} images/s"));
        output.WriteLine($"options    {status.Spec.Precision.Name()}, statistics {status.Spec.Statistics.ToString().ToLowerInvariant()}{(status.Spec.Flip ? ", with flips" : "")}, batch {status.Spec.BatchSize}");
        output.WriteLine($"skipped    {status.Skipped.Count}");
        foreach (var skipped in status.Skipped) output.WriteLine($"  {skipped.Name}: {skipped.Reason}");
        output.WriteLine($"output     {status.OutputLocation ?? "not yet written"}");
    }

    private static void PrintSampling(TextWriter output, SamplingJobStatus status)
    {
        output.WriteLine($"job        {status.JobId} (sampling, {status.Spec.Workload})");
        output.WriteLine($"state      {status.State}{(status.FailureReason is null ? "" : ": " + status.FailureReason)}");
        output.WriteLine($"progress   {JobWatcher.Bar(status.UnitsDone, status.UnitsTotal)} units {status.UnitsDone}/{status.UnitsTotal}");
        output.WriteLine($"samples    {status.Spec.Samples}, labels {status.Spec.Labels}, {status.Spec.Classes} classes, seed {status.Spec.Seed}");
        output.WriteLine($"source     {status.Spec.SourceTrainingJobId ?? "(checkpoint file)"}{(status.Spec.SourceCheckpointStep is { } step ? "@" + step : "")}");
        output.WriteLine($"output     {status.OutputLocation ?? "not yet written"}");
    }
}

/// <summary>`rae jobs watch ID`: follows a job to its end; exit 0 when it completed, 1 when it failed or was cancelled.</summary>
public sealed class JobsWatchCommand : ClusterCommand
{
    public override string Name => "jobs watch";

    private readonly Argument<string> _jobId = JobIdArgument();

    public override string Summary => "Live progress and loss until the job ends (exit 1 when it failed or was cancelled)";

    protected override IEnumerable<Symbol> OwnSymbols => [_jobId];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var jobId = parsed.GetRequiredValue(_jobId);
        return async (client, ctx) => ExitCodeOf(await new JobWatcher(client, ctx).WatchAsync(jobId));
    }
}

/// <summary>`rae jobs cancel ID`.</summary>
public sealed class JobsCancelCommand : ClusterCommand
{
    public override string Name => "jobs cancel";

    private readonly Argument<string> _jobId = JobIdArgument();

    public override string Summary => "Cancel a training or sampling job";

    protected override IEnumerable<Symbol> OwnSymbols => [_jobId];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var jobId = parsed.GetRequiredValue(_jobId);
        return async (client, ctx) =>
        {
            await client.CancelAsync(jobId);
            if (ctx.Json) ctx.WriteJson(new { jobId, kind = "cancel-requested" });
            else ctx.Output.WriteLine($"cancel requested for {jobId}");
            return Ok;
        };
    }
}
