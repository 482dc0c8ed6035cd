using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Models.Stage1;
using RAE.Models.Training;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// The typed options of a Stage 1 (decoder) training job, parsed once from the spec's configuration: the reference
/// <c>stage1</c> training YAML (stage_1, training, gan) plus the <c>data</c> section naming an image dataset of the
/// cluster (<c>data.source: dataset</c>, <c>data.name</c>, <c>data.num_samples</c> its image count; <c>rae train --data NAME</c>
/// fills them). Paths the config names (encoder, DINO, LPIPS weights) are checked when the replica is built, each
/// missing one a clear error naming its key.
/// </summary>
public sealed record DecoderJobConfig
{
    public required RaeConfig Config { get; init; }
    public required RaeParams Rae { get; init; }
    public required TrainingConfig Training { get; init; }
    public required GanConfig Gan { get; init; }
    public required DataConfig Data { get; init; }

    /// <summary>The decoder architecture as its config.json says (before the RAE overrides).</summary>
    public required DecoderConfig DecoderFile { get; init; }

    /// <summary>The decoder architecture with the RAE overrides: hidden size = encoder width, the decoder patch, the token grid.</summary>
    public DecoderConfig Decoder(int encoderWidth) =>
        DecoderFile.WithRaeOverrides(encoderWidth, Rae.DecoderPatchSize, Rae.TokenGridSize * Rae.TokenGridSize);

    /// <summary>Side of the images the decoder produces, and of the training crops: decoder patch × token grid side.</summary>
    public int ImageSize => Rae.DecoderPatchSize * Rae.TokenGridSize;

    public string DatasetName => Data.Name!;

    public static DecoderJobConfig FromSpec(TrainingJobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var configuration = spec.Config
            ?? throw new ArgumentException($"Workload '{TrainingJobSpecs.DecoderWorkload}' needs a Stage 1 configuration (TrainingJobSpec.Config); build the spec with TrainingJobSpecs.FromConfig.");
        return FromConfig(configuration.Parse());
    }

    public static DecoderJobConfig FromConfig(RaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var where = $"configuration '{config.SourceName}'";
        var stage1 = config.Stage1 ?? throw new ArgumentException($"{where}: a Stage 1 training job needs a 'stage_1' section.");
        var training = config.Training ?? throw new ArgumentException($"{where}: the 'training' section is required for a training job.");
        var data = config.Data ?? throw new ArgumentException($"{where}: the 'data' section is missing; train with rae train CONFIG --data NAME (an image dataset added with rae datasets add).");
        if (data.Source != DataSource.Dataset || string.IsNullOrWhiteSpace(data.Name))
            throw new ArgumentException($"{where}: data.source must be 'dataset' with data.name an image dataset of the cluster for workload '{TrainingJobSpecs.DecoderWorkload}' (rae train --data NAME).");
        var rae = stage1.Params;
        if (!rae.ReshapeTo2d) throw new ArgumentException($"{where}: stage_1.params.reshape_to_2d must be true for decoder training (the reference's setting).");
        var configPath = rae.DecoderConfigPath ?? throw new ArgumentException($"{where}: stage_1.params.decoder_config_path is not set (a folder or config.json of the decoder architecture).");
        var configFile = DecoderConfig.ResolveConfigFile(configPath);
        if (!File.Exists(configFile)) throw new FileNotFoundException($"stage_1.params.decoder_config_path: {configFile} does not exist", configFile);
        return new DecoderJobConfig
        {
            Config = config, Rae = rae, Training = training, Gan = config.Gan ?? new GanConfig(), Data = data, DecoderFile = DecoderConfig.FromFile(configFile),
        };
    }

    /// <summary>Generator steps per epoch of the dataset (drop_last, as the reference loader).</summary>
    public long StepsPerEpoch(int globalBatch) => TrainingJobSpecs.StepsPerEpoch(Config.SourceName, Data, globalBatch);

    /// <summary>The reference LambdaLR of the decoder optimizer (training.scheduler); constant without one.</summary>
    public LearningRateSchedule GeneratorSchedule(int globalBatch) => Schedule(Training.Optimizer, Training.Scheduler, globalBatch);

    /// <summary>The discriminator's own LambdaLR (gan.disc.scheduler), indexed by its update count.</summary>
    public LearningRateSchedule DiscriminatorSchedule(int globalBatch) => Schedule(Gan.Disc.Optimizer, Gan.Disc.Scheduler, globalBatch);

    public Stage1OptimizerSettings GeneratorSettings(int globalBatch) =>
        new(GeneratorSchedule(globalBatch), Training.Optimizer.Betas[0], Training.Optimizer.Betas[1], Training.Optimizer.WeightDecay);

    public Stage1OptimizerSettings DiscriminatorSettings(int globalBatch) =>
        new(DiscriminatorSchedule(globalBatch), Gan.Disc.Optimizer.Betas[0], Gan.Disc.Optimizer.Betas[1], Gan.Disc.Optimizer.WeightDecay);

    private LearningRateSchedule Schedule(OptimizerConfig optimizer, SchedulerConfig? scheduler, int globalBatch)
    {
        if (scheduler is null) return new LearningRateSchedule(optimizer.Lr, optimizer.Lr, 0, 0, DecayShape.Linear, false);
        var stepsPerEpoch = StepsPerEpoch(globalBatch);
        return new LearningRateSchedule(scheduler.BaseLr, scheduler.FinalLr, scheduler.WarmupStepCount(stepsPerEpoch),
            scheduler.DecayEndStepCount(stepsPerEpoch), scheduler.Type == LrScheduleType.Linear ? DecayShape.Linear : DecayShape.Cosine,
            scheduler.WarmupFromZero);
    }
}
