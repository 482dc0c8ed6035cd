using RAE.Client.Cluster;

namespace RAE.Client.Commands;

/// <summary>
/// `rae train CONFIG.yaml`: validates the config on the client (a bad key fails here, naming key and file), submits a
/// Stage 2 training job and, with --watch, follows it to the end (exit 1 when it fails).
/// </summary>
public sealed class TrainCommand : ClusterCommand
{
    public override string Name => "train";

    public override string Summary => "CONFIG.yaml [--set key=value ...] [--job-id ID] [--ranks N] [--workload dit-dh] [--precision fp32|bf16] [--watch] [--json]: submit a training job";

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(CommandArguments arguments, CommandContext context)
    {
        var path = RequireOne(arguments, "config file");
        var overrides = arguments.Options("set").ToList();
        // --precision is train.py's flag; it sets training.precision (bf16: autocast matmuls/attention, fp32 master weights).
        if (arguments.Option("precision") is { } precision)
        {
            if (precision is not ("fp32" or "bf16")) throw new UsageException($"--precision expects fp32 or bf16, got '{precision}'");
            overrides.Add($"training.precision={precision}");
        }
        var jobId = arguments.Option("job-id");
        var ranks = arguments.Int("ranks", 1);
        var workload = arguments.Option("workload") ?? JobSpecFactory.DefaultWorkload;
        var watch = arguments.Flag("watch");
        if (ranks < 1) throw new UsageException($"--ranks must be at least 1, got {ranks}");
        if (jobId is not null && (string.IsNullOrWhiteSpace(jobId) || jobId.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || jobId.Contains('|')))
            throw new UsageException($"--job-id '{jobId}' cannot name a job (no empty ids, path separators or '|')");
        var config = JobSpecFactory.LoadConfig(path, overrides);
        var spec = JobSpecFactory.Training(config, workload, ranks);

        return async (client, ctx) =>
        {
            var id = jobId is null ? await client.SubmitTrainingAsync(spec) : await client.SubmitTrainingAsync(spec, jobId);
            if (ctx.Json) ctx.WriteJson(new { jobId = id, kind = "submitted", spec.Workload, spec.Steps, spec.Ranks, spec.GlobalBatchSize });
            else ctx.Output.WriteLine($"submitted {id}: {spec.Workload}, {spec.Steps} steps, global batch {spec.GlobalBatchSize}, {spec.Ranks} rank(s)");
            if (!watch) return Ok;
            return ExitCodeOf(await new JobWatcher(client, ctx).WatchTrainingAsync(id));
        };
    }
}
