using RAE.GrainInterfaces;
using RAE.Configuration;
using RAE.Models.Stage2;
using RAE.Models.Training;
using RAE.Models.Transport;

namespace RAE.Grains.Workers.Stage2;

/// <summary>
/// The reference configuration of a DiT^DH training job, read from the job spec's settings: <see cref="ConfigSetting"/>
/// (YAML text in the reference schema) or <see cref="ConfigPathSetting"/> (a file), then <see cref="OverridesSetting"/>
/// (<c>key.path=value</c> lines). The config decides model, transport, optimizer, schedule, clipping, EMA and data; the spec
/// decides what the coordinator needs (global batch, accumulation, steps, seed) — <see cref="CreateSpec"/> fills the spec
/// from the config so the two agree.
/// </summary>
public sealed record DiTJobConfig
{
    public const string ConfigSetting = "config";
    public const string ConfigPathSetting = "config_path";
    public const string OverridesSetting = "overrides";

    public required RaeConfig Config { get; init; }
    public required DiTwDDTHeadOptions Model { get; init; }
    public required TrainingConfig Training { get; init; }
    public required DataConfig Data { get; init; }

    public IReadOnlyList<int> LatentShape => Config.Misc.LatentSize;

    public static DiTJobConfig FromSpec(TrainingJobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var overrides = spec.Settings.TryGetValue(OverridesSetting, out var lines)
            ? lines.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];
        RaeConfig config;
        if (spec.Settings.TryGetValue(ConfigSetting, out var yaml))
            config = RaeConfig.Parse(yaml, $"job setting '{ConfigSetting}'", overrides);
        else if (spec.Settings.TryGetValue(ConfigPathSetting, out var path))
            config = RaeConfig.Load(path, overrides);
        else
            throw new ArgumentException($"Workload '{DiTRankWorker.WorkloadName}' needs the setting '{ConfigSetting}' (YAML text) or '{ConfigPathSetting}' (a file) with a Stage-2 configuration.");
        return FromConfig(config);
    }

    public static DiTJobConfig FromConfig(RaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var where = $"configuration '{config.SourceName}'";
        if (config.Stage2?.Params is not DiTwDDTHeadParams model)
            throw new ArgumentException($"{where}: stage_2 must be a {Stage2Config.DiTwDDTHeadTarget} for workload '{DiTRankWorker.WorkloadName}', got {config.Stage2?.Target ?? "no stage_2 section"}.");
        var training = config.Training ?? throw new ArgumentException($"{where}: the 'training' section is required for a training job.");
        var data = config.Data ?? new DataConfig { Source = DataSource.SyntheticLatents };
        if (data.Source != DataSource.SyntheticLatents)
            throw new ArgumentException($"{where}: data.source must be 'synthetic-latents' for workload '{DiTRankWorker.WorkloadName}' (latent shards come with the data-pipeline issue).");
        if (config.Misc.LatentSize.Count != 3)
            throw new ArgumentException($"{where}: misc.latent_size must be [channels, height, width], got [{string.Join(", ", config.Misc.LatentSize)}].");
        return new DiTJobConfig { Config = config, Model = ToOptions(model), Training = training, Data = data };
    }

    /// <summary>A job spec whose coordinator-side fields come from the configuration (batch, accumulation, steps, seed, lr, clip).</summary>
    public static TrainingJobSpec CreateSpec(string configYaml, int ranks, IEnumerable<string>? overrides = null, long? steps = null, int checkpointInterval = 0)
    {
        var overrideList = overrides?.ToList() ?? [];
        var job = FromConfig(RaeConfig.Parse(configYaml, "job configuration", overrideList));
        var training = job.Training;
        var settings = new Dictionary<string, string> { [ConfigSetting] = configYaml };
        if (overrideList.Count > 0) settings[OverridesSetting] = string.Join('\n', overrideList);
        return new TrainingJobSpec
        {
            Workload = DiTRankWorker.WorkloadName,
            Ranks = ranks,
            GlobalBatchSize = training.ResolveGlobalBatchSize(ranks),
            GradientAccumulation = training.GradAccumSteps,
            Steps = checked((int)(steps ?? training.MaxSteps ?? training.Epochs * job.StepsPerEpoch(training.ResolveGlobalBatchSize(ranks)))),
            LearningRate = training.Optimizer.Lr,
            WeightDecay = training.Optimizer.WeightDecay,
            GradientClip = training.ClipGrad ?? 0,
            WarmupSteps = 0,
            Seed = training.GlobalSeed,
            CheckpointInterval = checkpointInterval,
            Settings = settings,
        };
    }

    /// <summary>Optimizer steps per epoch of the synthetic data set (drop_last, as the reference loader).</summary>
    public long StepsPerEpoch(int globalBatch) => Math.Max(1, Data.NumSamples / globalBatch);

    /// <summary>The reference LambdaLR for this job; a constant learning rate when the config has no scheduler.</summary>
    public LearningRateSchedule Schedule(int globalBatch)
    {
        var optimizer = Training.Optimizer;
        if (Training.Scheduler is not { } scheduler) return new LearningRateSchedule(optimizer.Lr, optimizer.Lr, 0, 0, DecayShape.Linear, false);
        var stepsPerEpoch = StepsPerEpoch(globalBatch);
        return new LearningRateSchedule(scheduler.BaseLr, scheduler.FinalLr, scheduler.WarmupStepCount(stepsPerEpoch),
            scheduler.DecayEndStepCount(stepsPerEpoch), scheduler.Type == LrScheduleType.Linear ? DecayShape.Linear : DecayShape.Cosine,
            scheduler.WarmupFromZero);
    }

    public FlowTransport Transport()
    {
        var transport = Config.Transport;
        return FlowTransport.Create(transport.PathType, transport.Prediction, transport.LossWeight, transport.TrainEps, transport.SampleEps,
            transport.TimeDistribution.Name, Config.TimeDistShift);
    }

    public static DiTwDDTHeadOptions ToOptions(DiTwDDTHeadParams model) => DiTwDDTHeadOptions.FromConfig(model);
}
