using System.CommandLine;
using RAE.Client.Cluster;
using RAE.Configuration;
using RAE.GrainInterfaces;

namespace RAE.Client.Commands;

/// <summary>
/// `rae train CONFIG.yaml`: validates the config on the client (a bad key fails here, naming key and file), submits a
/// Stage 2 training job and, with --watch (not by default), follows it to the end (exit 1 when it fails).
/// </summary>
public sealed class TrainCommand : ClusterCommand
{
    private readonly Argument<string> _config = new("CONFIG.yaml") { Description = "The training configuration (the reference's YAML schema)" };
    private readonly Option<string[]> _overrides = CliOptions.Repeatable("--set", "KEY=VALUE", "Override a config value, for example training.max_steps=50 (repeatable)");
    private readonly Option<string> _jobId = new("--job-id") { HelpName = "ID", Description = "The job's id [default: a new one]" };
    private readonly Option<string> _ranks = new("--ranks")
    {
        HelpName = "N|MIN..MAX",
        Description = "Ranks (data-parallel workers, one device each) to train on; with MIN..MAX the job starts once it gets MIN devices and grows up to MAX as devices free up or silos join [default: 1]",
    };
    private readonly Option<string> _workload = new("--workload") { HelpName = "NAME", Description = "Rank worker to train with [default: rae-decoder for a Stage 1 config (stage_1 without stage_2), else dit-dh]" };
    private readonly Option<string> _data = new("--data") { HelpName = "NAME", Description = "Train on the cluster's dataset NAME: for the Stage 1 decoder an image dataset (rae datasets add; sets data.source dataset, data.name, data.num_samples), for DiT^DH a latent dataset (rae encode; sets data.source latents, data.dataset)" };
    private readonly Option<string> _precision = CliOptions.Choice("--precision", "train.py's --precision: sets training.precision (bf16: bf16 matmuls and attention, fp32 master weights)", null, "fp32", "bf16");

    /// <summary>--watch / --no-watch; without either the command returns once the job is submitted.</summary>
    public WatchOptions Watching { get; } = new(watchByDefault: false);

    public override string Name => "train";

    public override string Summary => "Submit a training job (Stage 2 DiT^DH, or the Stage 1 decoder)";

    protected override IEnumerable<Symbol> OwnSymbols => [_config, _overrides, _jobId, _ranks, _workload, _data, _precision, .. Watching.All];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var path = parsed.GetRequiredValue(_config);
        var jobId = parsed.GetValue(_jobId);
        var ranks = parsed.GetValue(_ranks) is { } text ? RankRange.Parse(text) : RankRange.Exactly(1);
        var dataset = parsed.GetValue(_data);
        var watch = Watching.Read(parsed);
        if (jobId is not null && (string.IsNullOrWhiteSpace(jobId) || jobId.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || jobId.Contains('|')))
            throw new UsageException($"--job-id '{jobId}' cannot name a job (no empty ids, path separators or '|')");
        var overrides = parsed.GetRequiredValue(_overrides).ToList();
        if (parsed.GetValue(_precision) is { } precision) overrides.Add($"training.precision={precision}");
        if (dataset is not null && DatasetNames.Problem(dataset) is { } problem) throw new UsageException($"--data: {problem}");
        var loaded = JobSpecFactory.LoadConfig(path, overrides);
        var workload = parsed.GetValue(_workload) ?? TrainingJobSpecs.DefaultWorkloadOf(loaded);
        var config = dataset is null ? loaded : loaded.WithOverrides(workload == TrainingJobSpecs.DecoderWorkload
            ? ["data.source=dataset", $"data.name={dataset}"]
            : ["data.source=latents", $"data.dataset={dataset}"]);
        // A cluster dataset's size (the epoch length) is in its manifest, which only the cluster can read.
        var spec = config.Data?.Source is DataSource.Latents or DataSource.Dataset ? null : JobSpecFactory.Training(config, workload, ranks);

        return async (client, ctx) =>
        {
            if (spec is null)
            {
                if (config.Data!.Source == DataSource.Latents)
                {
                    var latents = await client.DescribeLatentDatasetAsync(config.Data.Dataset!);
                    spec = JobSpecFactory.Training(config, workload, ranks, latents.Count);
                }
                else
                {
                    var description = await client.Grains.GetGrain<IDatasetGrain>(config.Data.Name!).Describe();
                    spec = JobSpecFactory.Training(config.WithOverrides([$"data.num_samples={description.ImageCount}"]), workload, ranks);
                }
            }
            var id = jobId is null ? await client.SubmitTrainingAsync(spec) : await client.SubmitTrainingAsync(spec, jobId);
            if (ctx.Json) ctx.WriteJson(new { jobId = id, kind = "submitted", spec.Workload, spec.Steps, spec.Ranks, minRanks = spec.MinimumRanks, spec.GlobalBatchSize });
            else ctx.Output.WriteLine($"submitted {id}: {spec.Workload}, {spec.Steps} steps, global batch {spec.GlobalBatchSize}, {spec.DescribeRanks()} rank(s)");
            if (!watch) return Ok;
            return ExitCodeOf(await new JobWatcher(client, ctx).WatchTrainingAsync(id));
        };
    }
}
