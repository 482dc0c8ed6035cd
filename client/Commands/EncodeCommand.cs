using System.CommandLine;
using RAE.Client.Cluster;
using RAE.Configuration;
using RAE.GrainInterfaces;

namespace RAE.Client.Commands;

/// <summary>
/// `rae encode CONFIG.yaml --dataset NAME`: starts an encode job that turns an image dataset of the cluster into a latent
/// dataset with the frozen encoder of the config's <c>stage_1</c> section (latent shards, statistics, manifest), and
/// follows it to its end unless --no-watch.
/// </summary>
public sealed class EncodeCommand : ClusterCommand
{
    private readonly Argument<string> _config = new("CONFIG.yaml") { Description = "The configuration whose stage_1 section names the frozen encoder and its input size" };
    private readonly Option<string> _dataset = new("--dataset") { HelpName = "NAME", Description = "The image dataset to encode (rae datasets list)", Required = true };
    private readonly Option<string?> _name = new("--name") { HelpName = "LATENTS", Description = "Name of the latent dataset [default: DATASET-ENCODER-SIZE]" };
    private readonly Option<bool> _flip = new("--flip") { Description = "Also store the latents of the horizontally mirrored images" };
    private readonly Option<string> _statistics = CliOptions.Choice("--stats", "Latent statistics: exact (order-free float64 moments) or the reference's momentum rule", "exact", "exact", "momentum");
    private readonly Option<string> _precision = CliOptions.Choice("--precision", "How the latents are stored [default: the configuration's training.precision, else fp32]", null, "fp32", "bf16");
    private readonly Option<int> _batchSize = new("--batch-size") { HelpName = "N", Description = "Images per encoder call", DefaultValueFactory = _ => 32 };
    private readonly Option<string[]> _overrides = CliOptions.Repeatable("--set", "KEY=VALUE", "Override a config value (repeatable)");

    /// <summary>--watch / --no-watch; without either the command follows the job to its end.</summary>
    public WatchOptions Watching { get; } = new(watchByDefault: true);

    public override string Name => "encode";

    public override string Summary => "Encode an image dataset into latent shards and latent statistics with the config's frozen encoder";

    protected override IEnumerable<Symbol> OwnSymbols =>
        [_config, _dataset, _name, _flip, _statistics, _precision, _batchSize, _overrides, .. Watching.All];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var config = JobSpecFactory.LoadConfig(parsed.GetRequiredValue(_config), parsed.GetRequiredValue(_overrides));
        var dataset = parsed.GetRequiredValue(_dataset);
        if (DatasetNames.Problem(dataset) is { } datasetProblem) throw new UsageException(datasetProblem);
        var watch = Watching.Read(parsed);
        var batchSize = parsed.GetValue(_batchSize);
        if (batchSize < 1) throw new UsageException($"--batch-size must be at least 1, got {batchSize}");
        var stage1 = config.Stage1?.Params
            ?? throw new ConfigException(config.SourceName, "stage_1", null, "an encode job needs a 'stage_1' section naming the frozen encoder");
        var name = parsed.GetValue(_name) ?? DefaultName(dataset, stage1);
        if (DatasetNames.Problem(name) is { } nameProblem) throw new UsageException($"--name: the latent dataset's {nameProblem}");
        var precision = parsed.GetValue(_precision) is { } text ? ComputePrecisions.Parse(text) : config.Training?.Precision ?? ComputePrecision.Float32;
        var spec = new EncodeJobSpec
        {
            Dataset = dataset,
            LatentName = name,
            Config = JobConfiguration.From(config),
            Flip = parsed.GetValue(_flip),
            Statistics = parsed.GetRequiredValue(_statistics) == "momentum" ? LatentStatisticsMethod.Momentum : LatentStatisticsMethod.Exact,
            Precision = precision,
            BatchSize = batchSize,
        };
        return async (client, ctx) =>
        {
            var id = await client.SubmitEncodingAsync(spec);
            if (ctx.Json) ctx.WriteJson(new { jobId = id, kind = "submitted", spec.Dataset, spec.LatentName, spec.Flip, statistics = spec.Statistics, precision = spec.Precision.Name() });
            else ctx.Output.WriteLine($"started {id}: dataset {spec.Dataset} -> latents/{spec.LatentName} ({stage1.EncoderCls} at {stage1.EncoderInputSize} px, {spec.Precision.Name()}{(spec.Flip ? ", with flips" : "")}, {parsed.GetRequiredValue(_statistics)} statistics)");
            if (!watch) return Ok;
            return ExitCodeOf(await new JobWatcher(client, ctx).WatchEncodingAsync(id));
        };
    }

    /// <summary>DATASET-ENCODER-SIZE in lower case, cut to the longest allowed name.</summary>
    public static string DefaultName(string dataset, RaeParams encoder)
    {
        var stage = encoder.EncoderCls == RaeParams.ResNet18 && encoder.EncoderParams.ResNetStage != EncoderParams.DefaultResNetStage
            ? $"-layer{encoder.EncoderParams.ResNetStage}" : "";
        var name = $"{dataset}-{encoder.EncoderCls.ToLowerInvariant()}{stage}-{encoder.EncoderInputSize}";
        return name.Length <= DatasetNames.MaxLength ? name : name[..DatasetNames.MaxLength];
    }
}
