using RAE.Configuration;
using System.CommandLine;
using RAE.Client.Cluster;

namespace RAE.Client.Commands;

/// <summary>
/// `rae sample CONFIG.yaml`: starts a sampling job (weights from a training job's committed checkpoint with
/// --ckpt JOB[@STEP], the latest when no step is given, or from a file, else the config's stage_2.ckpt; without
/// CONFIG.yaml, --ckpt JOB samples with the configuration stored in the checkpoint) and follows it to the end unless --no-watch; prints where the `.npz` went.
/// </summary>
public sealed class SampleCommand : ClusterCommand
{
    private readonly Argument<string?> _config = new("CONFIG.yaml")
    {
        Description = "The sampling configuration; without it, --ckpt JOB samples with the configuration stored in that checkpoint",
        Arity = ArgumentArity.ZeroOrOne,
    };
    private readonly Option<string> _checkpoint = new("--ckpt")
    {
        HelpName = "JOB[@STEP]|FILE",
        Description = "Weights: a training job's committed checkpoint (the latest without @STEP) or a weights file [default: the config's stage_2.ckpt]",
    };
    private readonly Option<string> _weights = CliOptions.Choice("--weights", "Which weights of a training state to sample with [default: ema when the checkpoint has them]", null, "ema", "model");
    private readonly Option<int> _samples = new("--num-samples") { HelpName = "N", Description = "How many samples to draw", DefaultValueFactory = _ => 50 };
    private readonly Option<int> _seed = new("--seed") { HelpName = "S", Description = "Seed of the noise and the labels", DefaultValueFactory = _ => 0 };
    private readonly Option<string> _labels = CliOptions.Choice("--label-sampling", "Class labels: equal counts per class or drawn at random", "equal", "equal", "random");
    private readonly Option<string[]> _overrides = CliOptions.Repeatable("--set", "KEY=VALUE", "Override a config value (repeatable; needs CONFIG.yaml)");
    private readonly Option<int> _unitSize = new("--unit-size") { HelpName = "N", Description = "Samples per work unit", DefaultValueFactory = _ => 8 };
    private readonly Option<string> _workload = new("--workload") { HelpName = "NAME", Description = "Sampling worker to use", DefaultValueFactory = _ => JobSpecFactory.DefaultSamplingWorkload };
    private readonly Option<string> _jobId = new("--job-id") { HelpName = "ID", Description = "The sampling job's id [default: a new one]" };
    private readonly Option<string> _precision = CliOptions.Choice("--precision", "Arithmetic of matmuls and attention (the reference's sample --precision) [default: the configuration's sampler.precision]", null, "fp32", "bf16");

    /// <summary>--watch / --no-watch; without either the command follows the job to its end.</summary>
    public WatchOptions Watching { get; } = new(watchByDefault: true);

    public override string Name => "sample";

    public override string Summary => "Start a sampling job from a checkpoint and follow it to its end";

    protected override IEnumerable<Symbol> OwnSymbols =>
        [_config, _checkpoint, _weights, _samples, _seed, _labels, _overrides, _unitSize, _workload, _jobId, _precision, .. Watching.All];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var path = parsed.GetValue(_config);
        var overrides = parsed.GetRequiredValue(_overrides);
        var checkpoint = parsed.GetValue(_checkpoint);
        var samples = parsed.GetValue(_samples);
        var seed = parsed.GetValue(_seed);
        var labels = parsed.GetRequiredValue(_labels);
        var unitSize = parsed.GetValue(_unitSize);
        var workload = parsed.GetRequiredValue(_workload);
        var jobId = parsed.GetValue(_jobId);
        var watch = Watching.Read(parsed);
        var weights = parsed.GetValue(_weights);
        var precision = parsed.GetValue(_precision);
        if (samples < 1) throw new UsageException($"--num-samples must be at least 1, got {samples}");
        if (unitSize < 1) throw new UsageException($"--unit-size must be at least 1, got {unitSize}");
        var source = checkpoint is null ? new SamplingSource(null, null, null) : SamplingSource.Parse(checkpoint);
        if (path is null && source.TrainingJobId is null)
            throw new UsageException("expects a config file, or --ckpt JOB[@STEP] to sample with the configuration stored in that checkpoint");
        if (path is null && overrides.Length > 0) throw new UsageException("--set overrides need a config file");
        var config = path is null ? null : JobSpecFactory.LoadConfig(path, overrides);

        return async (client, ctx) =>
        {
            // A training job is passed as the source: the cluster resolves its checkpoint and reads the weights itself.
            var spec = config is null
                ? JobSpecFactory.SamplingWithCheckpointConfig(workload, source, samples, seed, labels, unitSize)
                : JobSpecFactory.Sampling(config, workload, source, samples, seed, labels, unitSize);
            spec = spec with { Weights = JobSpecFactory.ParseWeights(weights) };
            if (precision is not null) spec = spec with { Precision = ComputePrecisions.Parse(precision) };
            var id = await client.StartSamplingAsync(spec, jobId);
            if (ctx.Json) ctx.WriteJson(new { jobId = id, kind = "submitted", spec.Workload, spec.Samples, spec.Labels, spec.Seed });
            else ctx.Output.WriteLine($"started {id}: {spec.Samples} samples, labels {spec.Labels}, seed {spec.Seed}");
            if (!watch) return Ok;
            return ExitCodeOf(await new JobWatcher(client, ctx).WatchSamplingAsync(id));
        };
    }
}
