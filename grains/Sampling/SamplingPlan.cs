using System.Globalization;
using RAE.GrainInterfaces;
using RAE.Models.Config;
using RAE.Models.Stage1;

namespace RAE.Grains.Sampling;

/// <summary>
/// A validated sampling job: the spec plus what its <see cref="SamplingJobSpec.Settings"/> name. Settings keys:
/// <c>config</c> (path of an RAE YAML configuration) or <c>config_yaml</c> (its text), else the <c>config.yaml</c> of the
/// source training checkpoint; <c>checkpoint</c> (Stage-2 weights, safetensors or torch.save, EMA preferred; overrides
/// <c>stage_2.ckpt</c>; not allowed with <see cref="SamplingJobSpec.SourceTrainingJobId"/>); <c>weights</c> (<c>ema</c>,
/// the default, or <c>model</c>: which part of a training checkpoint to sample); <c>output</c> (blob folder, default
/// <c>samples/{job id}</c>); <c>max_workers</c> (0 = every device of every silo); <c>png</c> (true/false, default true);
/// <c>unit_delay_ms</c> (a pause after each unit, for tests and demos); <c>precision</c> (<c>fp32</c> or <c>bf16</c>: replaces the
/// configuration's <c>sampler.precision</c>).
/// </summary>
public sealed record SamplingPlan
{
    public const string Workload = "rae";
    public static readonly IReadOnlyList<string> KnownSettings = ["config", "config_yaml", "checkpoint", "weights", "output", "max_workers", "png", "unit_delay_ms", "precision"];
    public static readonly IReadOnlyList<string> WeightParts = ["ema", "model"];
    public static readonly IReadOnlyList<string> LabelModes = ["equal", "random"];

    public required SamplingJobSpec Spec { get; init; }
    public required RaeConfig Config { get; init; }
    /// <summary>The weights file; null when the weights come from a training job's checkpoint (<see cref="Source"/>).</summary>
    public string? CheckpointPath { get; init; }
    /// <summary>The pinned training-job checkpoint; null when the weights come from a file.</summary>
    public SamplingSourcePin? Source { get; init; }
    /// <summary>"ema" or "model": the part of a training checkpoint (or of a torch.save file) that is sampled.</summary>
    public string WeightsPart { get; init; } = "ema";
    /// <summary>True when the "weights" setting was given, so a file must hold that part.</summary>
    public bool WeightsPartExplicit { get; init; }
    public required string OutputPrefix { get; init; }
    public int MaxWorkers { get; init; }
    public bool WritePngs { get; init; } = true;
    public TimeSpan UnitDelay { get; init; }

    /// <summary>True when the configuration names a Stage-1 decoder, so units are decoded to uint8 images.</summary>
    public bool Decodes => Config.Stage1?.Params.PretrainedDecoderPath is not null;

    public int UnitCount => (Spec.Samples + Spec.UnitSize - 1) / Spec.UnitSize;

    public (int First, int Count) UnitRange(int unit)
    {
        var first = unit * Spec.UnitSize;
        return (first, Math.Min(Spec.UnitSize, Spec.Samples - first));
    }

    public string UnitLocation(int unit) => $"{OutputPrefix}/units/{unit:D6}.safetensors";

    public string ImagesPrefix => $"{OutputPrefix}/images";

    public string NpzLocation => $"{OutputPrefix}/samples.npz";

    /// <summary>True when the spec's settings carry a configuration (else it must come from the source checkpoint).</summary>
    public static bool HasOwnConfig(SamplingJobSpec spec) =>
        spec.Settings is { } settings && (settings.ContainsKey("config") || settings.ContainsKey("config_yaml"));

    /// <summary>
    /// Checks everything that can be checked without loading weights; throws <see cref="RaeJobException"/> naming the problem.
    /// A spec with a <see cref="SamplingJobSpec.SourceTrainingJobId"/> needs the resolved <paramref name="source"/>.
    /// </summary>
    public static SamplingPlan Create(string jobId, SamplingJobSpec spec, SamplingSourcePin? source = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Workload != Workload)
            throw new RaeJobException($"Sampling job '{jobId}': workload '{spec.Workload}' cannot be sampled; the sampling workload is '{Workload}' (a DiT^DH from an RAE configuration).");
        if (spec.Samples <= 0)
            throw new RaeJobException($"Sampling job '{jobId}': samples must be positive, got {spec.Samples}.");
        if (spec.UnitSize <= 0)
            throw new RaeJobException($"Sampling job '{jobId}': unit size must be positive, got {spec.UnitSize}.");
        if (!LabelModes.Contains(spec.Labels))
            throw new RaeJobException($"Sampling job '{jobId}': label mode '{spec.Labels}' is unknown; expected 'equal' or 'random'.");
        var settings = spec.Settings ?? new Dictionary<string, string>();
        var unknown = settings.Keys.Where(key => !KnownSettings.Contains(key)).ToList();
        if (unknown.Count > 0)
            throw new RaeJobException($"Sampling job '{jobId}': unknown setting(s) {string.Join(", ", unknown.Select(k => $"'{k}'"))}; known: {string.Join(", ", KnownSettings)}.");

        if (spec.SourceTrainingJobId is { } sourceJob)
        {
            if (settings.ContainsKey("checkpoint"))
                throw new RaeJobException($"Sampling job '{jobId}': the weights come either from training job '{sourceJob}' or from the 'checkpoint' setting, not both.");
            if (source is null)
                throw new RaeJobException($"Sampling job '{jobId}': the checkpoint of training job '{sourceJob}' was not resolved yet.");
            if (source.Checkpoint.JobId != sourceJob || spec.SourceCheckpointStep is { } step && step != source.Checkpoint.Step)
                throw new RaeJobException($"Sampling job '{jobId}': the pinned checkpoint ({source.Checkpoint.JobId} step {source.Checkpoint.Step}) is not the one the spec names ({sourceJob}{(spec.SourceCheckpointStep is { } s ? $" step {s}" : "")}).");
        }
        else if (source is not null)
        {
            throw new RaeJobException($"Sampling job '{jobId}': a checkpoint of job '{source.Checkpoint.JobId}' was pinned, but the spec names no source training job.");
        }
        var weightsPart = settings.GetValueOrDefault("weights") ?? "ema";
        if (!WeightParts.Contains(weightsPart))
            throw new RaeJobException($"Sampling job '{jobId}': setting 'weights' must be 'ema' or 'model', got '{weightsPart}'.");

        var config = LoadConfig(jobId, settings, source);
        if (settings.TryGetValue("precision", out var precision))
        {
            if (precision is not ("fp32" or "bf16"))
                throw new RaeJobException($"Sampling job '{jobId}': setting 'precision' must be 'fp32' or 'bf16', got '{precision}'.");
            config = config with { Sampler = config.Sampler with { Precision = Models.Nn.ComputePrecisions.Parse(precision) } };
        }
        if (config.Stage2 is null)
            throw new RaeJobException($"Sampling job '{jobId}': the configuration '{config.SourceName}' has no stage_2 section (the model to sample).");
        if (config.Stage2.Params is not DiTwDDTHeadParams model)
            throw new RaeJobException($"Sampling job '{jobId}': stage_2.target '{config.Stage2.Target}' is not DiT^DH; only {Stage2Config.DiTwDDTHeadTarget} is sampled.");
        if (spec.Classes < 1 || spec.Classes > model.NumClasses)
            throw new RaeJobException($"Sampling job '{jobId}': classes must be in [1, {model.NumClasses}] (stage_2.params.num_classes), got {spec.Classes}.");
        var latent = config.Misc.LatentSize;
        if (latent[0] != model.InChannels || latent[1] != model.InputSize || latent[2] != model.InputSize)
            throw new RaeJobException($"Sampling job '{jobId}': misc.latent_size [{string.Join(", ", latent)}] does not match the model's in_channels {model.InChannels} and input_size {model.InputSize}.");

        string? checkpoint = null;
        if (source is null)
        {
            checkpoint = settings.GetValueOrDefault("checkpoint") ?? config.Stage2.Ckpt
                ?? throw new RaeJobException($"Sampling job '{jobId}': no checkpoint: name a training job (SourceTrainingJobId), set the 'checkpoint' setting or stage_2.ckpt.");
            RequireFile(jobId, checkpoint, "Stage-2 checkpoint");
        }
        if (config.Guidance.IsActive && config.Guidance.Method == GuidanceMethod.Autoguidance)
            RequireFile(jobId, config.Guidance.GuidanceModel?.Ckpt, "guidance.guidance_model.ckpt");
        if (config.Stage1?.Params is { PretrainedDecoderPath: { } decoder } stage1)
        {
            RequireFile(jobId, decoder, "stage_1.params.pretrained_decoder_path");
            RequireFile(jobId, stage1.DecoderConfigPath is null ? null : DecoderConfig.ResolveConfigFile(stage1.DecoderConfigPath),
                "stage_1.params.decoder_config_path (a config.json or a folder holding one)");
            if (stage1.NormalizationStatPath is not null) RequireFile(jobId, stage1.NormalizationStatPath, "stage_1.params.normalization_stat_path");
        }

        var output = settings.GetValueOrDefault("output") ?? $"samples/{jobId}";
        try
        {
            Storage.BlobPath.Validate(output + "/units");
        }
        catch (ArgumentException error)
        {
            throw new RaeJobException($"Sampling job '{jobId}': setting 'output' is not a usable blob folder: {error.Message}");
        }
        return new SamplingPlan
        {
            Spec = spec,
            Config = config,
            CheckpointPath = checkpoint,
            Source = source,
            WeightsPart = weightsPart,
            WeightsPartExplicit = settings.ContainsKey("weights"),
            OutputPrefix = output.TrimEnd('/'),
            MaxWorkers = IntSetting(jobId, settings, "max_workers", 0, minimum: 0),
            WritePngs = BoolSetting(jobId, settings, "png", true),
            UnitDelay = TimeSpan.FromMilliseconds(IntSetting(jobId, settings, "unit_delay_ms", 0, minimum: 0)),
        };
    }

    private static RaeConfig LoadConfig(string jobId, IReadOnlyDictionary<string, string> settings, SamplingSourcePin? source)
    {
        try
        {
            if (settings.TryGetValue("config_yaml", out var text)) return RaeConfig.Parse(text, $"job {jobId} config_yaml");
            if (settings.TryGetValue("config", out var path))
            {
                if (!File.Exists(path)) throw new RaeJobException($"Sampling job '{jobId}': configuration file not found: {Path.GetFullPath(path)} (setting 'config').");
                return RaeConfig.Load(path);
            }
            if (source?.ConfigYaml is { } stored)
                return RaeConfig.Parse(stored, $"config.yaml of job {source.Checkpoint.JobId} step {source.Checkpoint.Step}");
        }
        catch (ConfigException error)
        {
            throw new RaeJobException($"Sampling job '{jobId}': bad configuration: {error.Message}");
        }
        if (source is not null)
            throw new RaeJobException($"Sampling job '{jobId}': no configuration: the checkpoint of job '{source.Checkpoint.JobId}' at step {source.Checkpoint.Step} holds no config.yaml; set 'config' (a YAML file) or 'config_yaml' (its text).");
        throw new RaeJobException($"Sampling job '{jobId}': no configuration: set 'config' (a YAML file) or 'config_yaml' (its text).");
    }

    private static void RequireFile(string jobId, string? path, string what)
    {
        if (path is null) throw new RaeJobException($"Sampling job '{jobId}': {what} is not set.");
        if (!File.Exists(path)) throw new RaeJobException($"Sampling job '{jobId}': {what} not found: {Path.GetFullPath(path)}.");
    }

    private static int IntSetting(string jobId, IReadOnlyDictionary<string, string> settings, string key, int fallback, int minimum)
    {
        if (!settings.TryGetValue(key, out var text)) return fallback;
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= minimum ? value
            : throw new RaeJobException($"Sampling job '{jobId}': setting '{key}' must be an integer >= {minimum}, got '{text}'.");
    }

    private static bool BoolSetting(string jobId, IReadOnlyDictionary<string, string> settings, string key, bool fallback)
    {
        if (!settings.TryGetValue(key, out var text)) return fallback;
        return bool.TryParse(text, out var value) ? value
            : throw new RaeJobException($"Sampling job '{jobId}': setting '{key}' must be true or false, got '{text}'.");
    }
}
