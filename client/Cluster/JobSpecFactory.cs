using RAE.GrainInterfaces;
using RAE.Configuration;

namespace RAE.Client.Cluster;

/// <summary>
/// Turns a reference-schema YAML config into job specs through the shared builders (<see cref="TrainingJobSpecs"/>,
/// <see cref="SamplingJobSpecs"/>): the config is validated here, once, for the error message, and travels in canonical form.
/// </summary>
public static class JobSpecFactory
{
    /// <summary>The training workload of the DiT^DH rank worker.</summary>
    public const string DefaultWorkload = TrainingJobSpecs.DiTWorkload;

    /// <summary>The sampling job's workload (a DiT^DH from an RAE configuration).</summary>
    public const string DefaultSamplingWorkload = SamplingJobSpec.RaeWorkload;

    /// <summary>Loads and validates the config; <see cref="ConfigException"/> names the key and file of any problem.</summary>
    public static RaeConfig LoadConfig(string path, IReadOnlyList<string> overrides)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Config file '{path}' does not exist.", path);
        return RaeConfig.Load(path, overrides);
    }

    /// <summary>The training spec; <paramref name="latentDatasetSize"/> is the latent dataset's count for <c>data.source: latents</c>.</summary>
    public static TrainingJobSpec Training(RaeConfig config, string workload, int ranks, long? latentDatasetSize = null) =>
        TrainingJobSpecs.FromConfig(config, ranks, workload, latentDatasetSize);

    /// <summary>The training spec for a range of ranks: the global batch is the configuration's for MAX ranks and must
    /// split evenly over MIN (<see cref="Commands.UsageException"/> otherwise); the job starts with MIN and grows up to MAX.</summary>
    public static TrainingJobSpec Training(RaeConfig config, string workload, RankRange ranks, long? latentDatasetSize = null)
    {
        var spec = TrainingJobSpecs.FromConfig(config, ranks.Max, workload, latentDatasetSize);
        if (ranks.Min == ranks.Max) return spec;
        if (spec.GlobalBatchSize % (ranks.Min * spec.GradientAccumulation) != 0)
            throw new Commands.UsageException($"--ranks {ranks}: the global batch {spec.GlobalBatchSize} does not split over {ranks.Min} rank(s) x {spec.GradientAccumulation} accumulation step(s)");
        return spec with { MinRanks = ranks.Min };
    }

    /// <summary>
    /// The sampling spec. A training job named by <paramref name="source"/> is passed as the spec's source: the sampling
    /// job resolves its committed checkpoint (the step, or the latest) and its workers read the weights from the payload.
    /// Otherwise the weights file is the one given with --ckpt, else the config's stage_2.ckpt.
    /// </summary>
    public static SamplingJobSpec Sampling(RaeConfig config, string workload, SamplingSource source, int samples, long seed, string labels, int unitSize) =>
        SamplingJobSpecs.FromConfig(config, source.TrainingJobId, source.Step, source.TrainingJobId is null ? source.CheckpointPath : null) with
        {
            Workload = workload,
            Samples = samples,
            UnitSize = unitSize,
            Labels = labels,
            Seed = seed,
        };

    /// <summary>
    /// A sampling spec without a configuration: the sampling job uses the config.yaml stored in the training job's
    /// checkpoint, and samples every class of it (<see cref="SamplingJobSpec.Classes"/> 0).
    /// </summary>
    public static SamplingJobSpec SamplingWithCheckpointConfig(string workload, SamplingSource source, int samples, long seed, string labels, int unitSize)
    {
        if (source.TrainingJobId is null)
            throw new Commands.UsageException("a sampling job without a config file needs --ckpt JOB[@STEP] (a training job's checkpoint holds its configuration)");
        return SamplingJobSpecs.FromTrainingJob(source.TrainingJobId, source.Step) with
        {
            Workload = workload,
            Samples = samples,
            UnitSize = unitSize,
            Labels = labels,
            Seed = seed,
        };
    }

    /// <summary>"ema" or "model" (--weights); null keeps the default.</summary>
    public static CheckpointWeights? ParseWeights(string? weights) => weights switch
    {
        null => null,
        "ema" => CheckpointWeights.Ema,
        "model" => CheckpointWeights.Model,
        _ => throw new Commands.UsageException($"--weights expects ema or model, got '{weights}'"),
    };
}

/// <summary>Where a sampling job's weights come from: a training job's checkpoint (latest or a step) or a file.</summary>
public sealed record SamplingSource(string? TrainingJobId, long? Step, string? CheckpointPath)
{
    /// <summary>"JOB", "JOB@STEP" or a path to a checkpoint file.</summary>
    public static SamplingSource Parse(string text)
    {
        if (File.Exists(text) || text.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || text.EndsWith(".pt", StringComparison.OrdinalIgnoreCase))
            return new SamplingSource(null, null, Path.GetFullPath(text));
        var at = text.LastIndexOf('@');
        if (at < 0) return new SamplingSource(text, null, null);
        return long.TryParse(text.AsSpan(at + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var step) && at > 0
            ? new SamplingSource(text[..at], step, null)
            : throw new Commands.UsageException($"--ckpt expects JOB, JOB@STEP or a checkpoint file, got '{text}'");
    }
}
