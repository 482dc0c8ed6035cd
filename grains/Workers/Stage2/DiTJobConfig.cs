using RAE.GrainInterfaces;
using RAE.Configuration;
using RAE.Models.Stage2;
using RAE.Models.Training;
using RAE.Models.Transport;

namespace RAE.Grains.Workers.Stage2;

/// <summary>
/// The typed options of a DiT^DH training job, built from the spec's <see cref="TrainingJobSpec.Config"/> (canonical YAML
/// in the reference schema). The config decides model, transport, optimizer, schedule, clipping, EMA and data; the spec
/// (filled from the same config by <see cref="TrainingJobSpecs.FromConfig"/>) decides what the coordinator needs.
/// </summary>
public sealed record DiTJobConfig
{
    public required RaeConfig Config { get; init; }
    public required DiTwDDTHeadOptions Model { get; init; }
    public required TrainingConfig Training { get; init; }
    public required DataConfig Data { get; init; }

    public IReadOnlyList<int> LatentShape => Config.Misc.LatentSize;

    /// <summary>Parses the spec's configuration; callers keep the result for their activation.</summary>
    public static DiTJobConfig FromSpec(TrainingJobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var configuration = spec.Config
            ?? throw new ArgumentException($"Workload '{DiTRankWorker.WorkloadName}' needs a Stage-2 configuration (TrainingJobSpec.Config); build the spec with TrainingJobSpecs.FromConfig.");
        return FromConfig(configuration.Parse());
    }

    public static DiTJobConfig FromConfig(RaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var where = $"configuration '{config.SourceName}'";
        if (config.Stage2?.Params is not DiTwDDTHeadParams model)
            throw new ArgumentException($"{where}: stage_2 must be a {Stage2Config.DiTwDDTHeadTarget} for workload '{DiTRankWorker.WorkloadName}', got {config.Stage2?.Target ?? "no stage_2 section"}.");
        var training = config.Training ?? throw new ArgumentException($"{where}: the 'training' section is required for a training job.");
        DataConfig data;
        try
        {
            data = TrainingJobSpecs.RequireData(config);
        }
        catch (ConfigException error)
        {
            throw new ArgumentException(error.Message, error);
        }
        if (data.Source is not (DataSource.SyntheticLatents or DataSource.Latents))
            throw new ArgumentException($"{where}: data.source must be 'latents' (a latent dataset written by 'rae encode') or 'synthetic-latents' for workload '{DiTRankWorker.WorkloadName}'; images are encoded first.");
        if (config.Misc.LatentSize.Count != 3)
            throw new ArgumentException($"{where}: misc.latent_size must be [channels, height, width], got [{string.Join(", ", config.Misc.LatentSize)}].");
        return new DiTJobConfig { Config = config, Model = DiTwDDTHeadOptions.FromConfig(model), Training = training, Data = data };
    }

    /// <summary>Optimizer steps per epoch of the data set (drop_last, as the reference loader); a latent dataset's size is its manifest's count.</summary>
    public long StepsPerEpoch(int globalBatch, long? latentDatasetSize = null) =>
        TrainingJobSpecs.StepsPerEpoch(Config.SourceName, Data, globalBatch, latentDatasetSize);

    /// <summary>The reference LambdaLR for this job (epochs from the dataset's size); a constant learning rate when the config has no scheduler.</summary>
    public LearningRateSchedule Schedule(int globalBatch, long? latentDatasetSize = null)
    {
        var optimizer = Training.Optimizer;
        if (Training.Scheduler is not { } scheduler) return new LearningRateSchedule(optimizer.Lr, optimizer.Lr, 0, 0, DecayShape.Linear, false);
        var stepsPerEpoch = StepsPerEpoch(globalBatch, latentDatasetSize);
        return new LearningRateSchedule(scheduler.BaseLr, scheduler.FinalLr, scheduler.WarmupStepCount(stepsPerEpoch),
            scheduler.DecayEndStepCount(stepsPerEpoch), scheduler.Type == LrScheduleType.Linear ? DecayShape.Linear : DecayShape.Cosine,
            scheduler.WarmupFromZero);
    }

    public FlowTransport Transport() => FlowTransport.FromConfig(Config);
}
