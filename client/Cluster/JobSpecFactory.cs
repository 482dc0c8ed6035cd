using RAE.GrainInterfaces;
using RAE.Models.Config;

namespace RAE.Client.Cluster;

/// <summary>
/// Turns a reference-schema YAML config into job specs. The workers get the whole effective config (overrides applied)
/// as YAML in the settings, so they build exactly the model, transport and sampler the file describes.
/// </summary>
public static class JobSpecFactory
{
    /// <summary>Training spec setting: the effective config (after --set overrides) as YAML (DiTJobConfig.ConfigSetting of the dit-dh worker).</summary>
    public const string TrainingConfigSetting = "config";

    /// <summary>Sampling spec setting: the effective config as YAML (the sampling job's "config_yaml").</summary>
    public const string SamplingConfigSetting = "config_yaml";

    /// <summary>Sampling spec setting: the Stage 2 weights file (overrides stage_2.ckpt).</summary>
    public const string CheckpointSetting = "checkpoint";

    /// <summary>Sampling spec setting: "ema" (default) or "model", the part of a training checkpoint that is sampled.</summary>
    public const string WeightsSetting = "weights";

    /// <summary>Sampling spec setting: "fp32" or "bf16", replacing the configuration's sampler.precision.</summary>
    public const string PrecisionSetting = "precision";

    /// <summary>The training workload of the DiT^DH rank worker.</summary>
    public const string DefaultWorkload = "dit-dh";

    /// <summary>The sampling job's workload (a DiT^DH from an RAE configuration).</summary>
    public const string DefaultSamplingWorkload = "rae";

    /// <summary>Loads and validates the config; <see cref="ConfigException"/> names the key and file of any problem.</summary>
    public static RaeConfig LoadConfig(string path, IReadOnlyList<string> overrides)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Config file '{path}' does not exist.", path);
        return RaeConfig.Load(path, overrides);
    }

    public static TrainingJobSpec Training(RaeConfig config, string workload, int ranks)
    {
        var training = config.Training ?? throw new ConfigException(config.SourceName, "training", null, "a training job needs a 'training' section");
        if (config.Stage2 is null) throw new ConfigException(config.SourceName, "stage_2", null, "a Stage 2 training job needs a 'stage_2' section");
        var globalBatch = training.ResolveGlobalBatchSize(ranks);
        var stepsPerEpoch = StepsPerEpoch(config, globalBatch);
        var steps = training.MaxSteps ?? training.Epochs * stepsPerEpoch;
        if (steps > int.MaxValue) throw new ConfigException(config.SourceName, "training.max_steps", null, $"{steps} steps is more than one job can run; set training.max_steps");
        var checkpointEvery = training.CheckpointEverySteps ?? training.CheckpointInterval * stepsPerEpoch;
        var settings = new Dictionary<string, string>(StringComparer.Ordinal) { [TrainingConfigSetting] = config.ToYaml() };
        if (training.KeepLast is not null || training.KeepEvery is not null || training.KeepBest is not null)
        {
            var retention = new CheckpointRetentionPolicy { KeepLast = training.KeepLast ?? 0, KeepEvery = training.KeepEvery ?? 0, KeepBest = training.KeepBest ?? 0 };
            foreach (var (key, value) in retention.ToSettings()) settings[key] = value;
        }
        return new TrainingJobSpec
        {
            Workload = workload,
            Ranks = ranks,
            GlobalBatchSize = globalBatch,
            GradientAccumulation = training.GradAccumSteps,
            Steps = (int)steps,
            LearningRate = training.Optimizer.Lr,
            WeightDecay = training.Optimizer.WeightDecay,
            GradientClip = training.ClipGrad is > 0 ? training.ClipGrad.Value : 0,
            // The worker runs the config's own schedule (warm-up included), as the dit-dh worker's CreateSpec does.
            WarmupSteps = 0,
            Seed = training.GlobalSeed,
            CheckpointInterval = (int)Math.Clamp(checkpointEvery, 0, int.MaxValue),
            Settings = settings,
        };
    }

    /// <summary>Optimizer steps per epoch: the data set's samples over the global batch (last partial batch dropped), at least 1.</summary>
    public static long StepsPerEpoch(RaeConfig config, int globalBatch) =>
        Math.Max(1, (config.Data?.NumSamples ?? 1024) / Math.Max(1, globalBatch));

    /// <summary>
    /// The sampling spec. A training job named by <paramref name="source"/> is passed as the spec's source: the sampling
    /// job resolves its committed checkpoint (the step, or the latest) and its workers read the weights from the payload.
    /// Otherwise the weights file is the one given with --ckpt, else the config's stage_2.ckpt.
    /// </summary>
    public static SamplingJobSpec Sampling(RaeConfig config, string workload, SamplingSource source, int samples, long seed, string labels, int unitSize)
    {
        if (config.Stage2 is null) throw new ConfigException(config.SourceName, "stage_2", null, "a sampling job needs a 'stage_2' section");
        var settings = new Dictionary<string, string>(StringComparer.Ordinal) { [SamplingConfigSetting] = config.ToYaml() };
        var checkpointPath = source.TrainingJobId is not null ? null : source.CheckpointPath ?? ResolveConfigPath(config.Stage2.Ckpt);
        if (checkpointPath is not null) settings[CheckpointSetting] = checkpointPath;
        return SamplingSpec(workload, source, samples, seed, labels, unitSize, config.Misc.NumClasses, settings);
    }

    /// <summary>
    /// A sampling spec without a configuration: the sampling job uses the config.yaml stored in the training job's
    /// checkpoint, and samples every class of it (<see cref="SamplingJobSpec.Classes"/> 0).
    /// </summary>
    public static SamplingJobSpec SamplingWithCheckpointConfig(string workload, SamplingSource source, int samples, long seed, string labels, int unitSize)
    {
        if (source.TrainingJobId is null)
            throw new Commands.UsageException("a sampling job without a config file needs --ckpt JOB[@STEP] (a training job's checkpoint holds its configuration)");
        return SamplingSpec(workload, source, samples, seed, labels, unitSize, classes: 0, new Dictionary<string, string>(StringComparer.Ordinal));
    }

    private static SamplingJobSpec SamplingSpec(string workload, SamplingSource source, int samples, long seed, string labels, int unitSize,
        int classes, Dictionary<string, string> settings) => new()
    {
        Workload = workload,
        SourceTrainingJobId = source.TrainingJobId,
        SourceCheckpointStep = source.Step,
        Samples = samples,
        UnitSize = unitSize,
        Classes = classes,
        Labels = labels,
        Seed = seed,
        Settings = settings,
    };

    /// <summary>A relative ckpt path in a config is taken relative to the working directory, as the reference scripts do.</summary>
    private static string? ResolveConfigPath(string? path) =>
        string.IsNullOrWhiteSpace(path) ? null : Path.GetFullPath(path);
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
