using RAE.Client.Cluster;

namespace RAE.Client.Commands;

/// <summary>
/// `rae sample CONFIG.yaml`: starts a sampling job (weights from a training job's committed checkpoint with
/// --ckpt JOB[@STEP], the latest when no step is given, or from a file, else the config's stage_2.ckpt; without
/// CONFIG.yaml, --ckpt JOB samples with the configuration stored in the checkpoint) and follows it to the end unless --no-watch; prints where the `.npz` went.
/// </summary>
public sealed class SampleCommand : ClusterCommand
{
    public override string Name => "sample";

    public override string Summary => "[CONFIG.yaml] [--ckpt JOB[@STEP]|FILE] [--weights ema|model] [--num-samples N] [--seed S] [--label-sampling equal|random] [--precision fp32|bf16] [--set k=v] [--no-watch] [--json]";

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(CommandArguments arguments, CommandContext context)
    {
        if (arguments.Positional.Count > 1) throw new UsageException($"expects at most one config file, got {arguments.Positional.Count}");
        var path = arguments.Positional.Count == 1 ? arguments.Positional[0] : null;
        var overrides = arguments.Options("set");
        var checkpoint = arguments.Option("ckpt");
        var samples = arguments.Int("num-samples", 50);
        var seed = arguments.Int("seed", 0);
        var labels = arguments.Option("label-sampling") ?? "equal";
        var unitSize = arguments.Int("unit-size", 8);
        var workload = arguments.Option("workload") ?? JobSpecFactory.DefaultSamplingWorkload;
        var jobId = arguments.Option("job-id");
        var noWatch = arguments.Flag("no-watch");
        var weights = arguments.Option("weights");
        var precision = arguments.Option("precision");
        if (precision is not (null or "fp32" or "bf16")) throw new UsageException($"--precision expects fp32 or bf16, got '{precision}'");
        if (weights is not (null or "ema" or "model")) throw new UsageException($"--weights expects ema or model, got '{weights}'");
        if (samples < 1) throw new UsageException($"--num-samples must be at least 1, got {samples}");
        if (unitSize < 1) throw new UsageException($"--unit-size must be at least 1, got {unitSize}");
        if (labels is not ("equal" or "random")) throw new UsageException($"--label-sampling expects equal or random, got '{labels}'");
        var source = checkpoint is null ? new SamplingSource(null, null, null) : SamplingSource.Parse(checkpoint);
        if (path is null && source.TrainingJobId is null)
            throw new UsageException("expects a config file, or --ckpt JOB[@STEP] to sample with the configuration stored in that checkpoint");
        if (path is null && overrides.Count > 0) throw new UsageException("--set overrides need a config file");
        var config = path is null ? null : JobSpecFactory.LoadConfig(path, overrides);

        return async (client, ctx) =>
        {
            // A training job is passed as the source: the cluster resolves its checkpoint and reads the weights itself.
            var spec = config is null
                ? JobSpecFactory.SamplingWithCheckpointConfig(workload, source, samples, seed, labels, unitSize)
                : JobSpecFactory.Sampling(config, workload, source, samples, seed, labels, unitSize);
            if (weights is not null) spec = spec with { Settings = new Dictionary<string, string>(spec.Settings) { [JobSpecFactory.WeightsSetting] = weights } };
            if (precision is not null) spec = spec with { Settings = new Dictionary<string, string>(spec.Settings) { [JobSpecFactory.PrecisionSetting] = precision } };
            var id = await client.StartSamplingAsync(spec, jobId);
            if (ctx.Json) ctx.WriteJson(new { jobId = id, kind = "submitted", spec.Workload, spec.Samples, spec.Labels, spec.Seed });
            else ctx.Output.WriteLine($"started {id}: {spec.Samples} samples, labels {spec.Labels}, seed {spec.Seed}");
            if (noWatch) return Ok;
            return ExitCodeOf(await new JobWatcher(client, ctx).WatchSamplingAsync(id));
        };
    }
}
