using RAE.GrainInterfaces;
using RAE.Configuration;
using RAE.Models.Stage1;
using RAE.Grains.Storage;

namespace RAE.Grains.Sampling;

/// <summary>
/// A validated sampling job: the spec, its typed configuration (the spec's own, else the <c>config.yaml</c> of the source
/// training checkpoint) and what follows from them. A grain builds it once per activation and keeps it.
/// </summary>
public sealed record SamplingPlan
{
    public const string Workload = SamplingJobSpec.RaeWorkload;
    public static readonly IReadOnlyList<string> LabelModes = ["equal", "random"];

    public required SamplingJobSpec Spec { get; init; }
    public required RaeConfig Config { get; init; }
    /// <summary>SHA-256 of the configuration's canonical YAML, whether it came with the spec or from the checkpoint.</summary>
    public required string ConfigSha256 { get; init; }
    /// <summary>The weights file; null when the weights come from a training job's checkpoint (<see cref="Source"/>).</summary>
    public string? CheckpointPath { get; init; }
    /// <summary>The pinned training-job checkpoint; null when the weights come from a file.</summary>
    public SamplingSourcePin? Source { get; init; }
    /// <summary>"ema" or "model": the part of a training checkpoint (or of a torch.save file) that is sampled.</summary>
    public string WeightsPart { get; init; } = "ema";
    /// <summary>True when the spec names the part (<see cref="SamplingJobSpec.Weights"/>), so a file must hold that part.</summary>
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

    public string UnitLocation(int unit) => UnitLocationOf(OutputPrefix, unit);

    public string ImagesPrefix => $"{OutputPrefix}/images";

    public string NpzLocation => NpzLocationOf(OutputPrefix);

    public static string UnitLocationOf(string outputPrefix, int unit) => $"{outputPrefix}/units/{unit:D6}.safetensors";

    public static string NpzLocationOf(string outputPrefix) => $"{outputPrefix}/samples.npz";

    /// <summary>
    /// Checks everything that can be checked without loading weights; throws <see cref="RaeJobException"/> naming the problem.
    /// A spec with a <see cref="SamplingJobSpec.SourceTrainingJobId"/> needs the resolved <paramref name="source"/>.
    /// </summary>
    public static SamplingPlan Create(string jobId, SamplingJobSpec spec, SiloDataRoots dataRoots, SamplingSourcePin? source = null) =>
        Create(jobId, spec, source, ParseConfig(jobId, spec, source), dataRoots);

    /// <summary>
    /// <see cref="Create(string, SamplingJobSpec, SiloDataRoots, SamplingSourcePin?)"/> with the configuration already parsed
    /// (by <see cref="ParseConfig"/>). Every file the job names must lie inside <paramref name="dataRoots"/>.
    /// </summary>
    public static SamplingPlan Create(string jobId, SamplingJobSpec spec, SamplingSourcePin? source, RaeConfig config, SiloDataRoots dataRoots)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(dataRoots);
        var output = OutputPrefixOf(jobId, spec);
        var files = new JobFiles(dataRoots, $"Sampling job '{jobId}'");
        if (spec.Workload != Workload)
            throw new RaeJobException($"Sampling job '{jobId}': workload '{spec.Workload}' cannot be sampled; the sampling workload is '{Workload}' (a DiT^DH from an RAE configuration).");
        if (spec.Samples <= 0)
            throw new RaeJobException($"Sampling job '{jobId}': samples must be positive, got {spec.Samples}.");
        if (spec.UnitSize <= 0)
            throw new RaeJobException($"Sampling job '{jobId}': unit size must be positive, got {spec.UnitSize}.");
        if (!LabelModes.Contains(spec.Labels))
            throw new RaeJobException($"Sampling job '{jobId}': label mode '{spec.Labels}' is unknown; expected 'equal' or 'random'.");
        if (spec.MaxWorkers < 0)
            throw new RaeJobException($"Sampling job '{jobId}': MaxWorkers must be 0 (every device) or positive, got {spec.MaxWorkers}.");
        if (spec.UnitDelay < TimeSpan.Zero)
            throw new RaeJobException($"Sampling job '{jobId}': UnitDelay must be zero or positive, got {spec.UnitDelay}.");

        if (spec.SourceTrainingJobId is { } sourceJob)
        {
            if (spec.CheckpointPath is not null)
                throw new RaeJobException($"Sampling job '{jobId}': the weights come either from training job '{sourceJob}' or from the file '{spec.CheckpointPath}', not both.");
            if (source is null)
                throw new RaeJobException($"Sampling job '{jobId}': the checkpoint of training job '{sourceJob}' was not resolved yet.");
            if (source.Checkpoint.JobId != sourceJob || spec.SourceCheckpointStep is { } step && step != source.Checkpoint.Step)
                throw new RaeJobException($"Sampling job '{jobId}': the pinned checkpoint ({source.Checkpoint.JobId} step {source.Checkpoint.Step}) is not the one the spec names ({sourceJob}{(spec.SourceCheckpointStep is { } s ? $" step {s}" : "")}).");
        }
        else if (source is not null)
        {
            throw new RaeJobException($"Sampling job '{jobId}': a checkpoint of job '{source.Checkpoint.JobId}' was pinned, but the spec names no source training job.");
        }
        var weightsPart = spec.Weights switch
        {
            null or CheckpointWeights.Ema => "ema",
            CheckpointWeights.Model => "model",
            var other => throw new RaeJobException($"Sampling job '{jobId}': Weights must be Ema or Model, got {other}."),
        };

        if (spec.Precision is { } precision)
            config = config with { Sampler = config.Sampler with { Precision = precision } };
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
            checkpoint = spec.CheckpointPath ?? config.Stage2.Ckpt
                ?? throw new RaeJobException($"Sampling job '{jobId}': no checkpoint: name a training job (SourceTrainingJobId), a weights file (CheckpointPath) or stage_2.ckpt.");
            files.Require(checkpoint, spec.CheckpointPath is null ? "stage_2.ckpt" : "CheckpointPath");
        }
        if (config.Guidance.IsActive && config.Guidance.Method == GuidanceMethod.Autoguidance)
            files.Require(config.Guidance.GuidanceModel?.Ckpt, "guidance.guidance_model.ckpt");
        if (config.Stage1?.Params is { PretrainedDecoderPath: { } decoder } stage1)
        {
            files.Require(decoder, "stage_1.params.pretrained_decoder_path");
            const string decoderConfig = "stage_1.params.decoder_config_path";
            var configFile = stage1.DecoderConfigPath is null ? null : DecoderConfig.ResolveConfigFile(files.Inside(stage1.DecoderConfigPath, decoderConfig));
            files.Require(configFile, decoderConfig + " (a config.json or a folder holding one)");
            if (stage1.NormalizationStatPath is not null) files.Require(stage1.NormalizationStatPath, "stage_1.params.normalization_stat_path");
        }

        return new SamplingPlan
        {
            Spec = spec,
            Config = config,
            ConfigSha256 = spec.Config?.Sha256 ?? JobConfiguration.HashOf(config.ToYaml()),
            CheckpointPath = checkpoint,
            Source = source,
            WeightsPart = weightsPart,
            WeightsPartExplicit = spec.Weights is not null,
            OutputPrefix = output,
            MaxWorkers = spec.MaxWorkers,
            WritePngs = spec.WritePngs,
            UnitDelay = spec.UnitDelay,
        };
    }

    /// <summary>
    /// The typed configuration: the spec's own, else the <c>config.yaml</c> stored in the pinned training checkpoint.
    /// <see cref="RaeJobException"/> when there is none or it is invalid.
    /// </summary>
    public static RaeConfig ParseConfig(string jobId, SamplingJobSpec spec, SamplingSourcePin? source)
    {
        ArgumentNullException.ThrowIfNull(spec);
        try
        {
            if (spec.Config is { } own) return own.Parse();
            if (source?.ConfigYaml is { } stored)
                return RaeConfig.Parse(stored, $"config.yaml of job {source.Checkpoint.JobId} step {source.Checkpoint.Step}");
        }
        catch (Exception error) when (error is ConfigException or RaeJobException)
        {
            throw new RaeJobException($"Sampling job '{jobId}': bad configuration: {error.Message}", error);
        }
        if (source is not null)
            throw new RaeJobException($"Sampling job '{jobId}': no configuration: the checkpoint of job '{source.Checkpoint.JobId}' at step {source.Checkpoint.Step} holds no config.yaml; give the job a configuration (SamplingJobSpec.Config).");
        throw new RaeJobException($"Sampling job '{jobId}': no configuration: give the job one (SamplingJobSpec.Config) or a source training job whose checkpoint holds one.");
    }

    /// <summary>
    /// The blob folder of the job's results: <c>samples/{job}</c>, or a folder below it that the spec's Output names. Any
    /// other folder (another job's, checkpoints, data sets) is refused, so a job never overwrites what it does not own.
    /// </summary>
    public static string OutputPrefixOf(string jobId, SamplingJobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var own = "samples/" + JobBlobNames.RequireJobId(jobId);
        if (spec.Output is null) return own;
        var output = spec.Output.TrimEnd('/');
        try
        {
            BlobPath.Validate(output + "/units");
        }
        catch (ArgumentException error)
        {
            throw new RaeJobException($"Sampling job '{jobId}': Output is not a usable blob folder: {error.Message}");
        }
        if (output != own && !output.StartsWith(own + "/", StringComparison.Ordinal))
            throw new RaeJobException($"Sampling job '{jobId}': Output '{spec.Output}' is outside the job's own folder '{own}'; a job writes only there (or in a folder below it).");
        return output;
    }

    /// <summary>The files a job names: each inside the silo's data roots before its existence is even looked at.</summary>
    private sealed class JobFiles(SiloDataRoots roots, string owner)
    {
        public string Inside(string path, string setting) => roots.Resolve(path, setting, owner);

        public void Require(string? path, string setting)
        {
            if (path is null) throw new RaeJobException($"{owner}: {setting} is not set.");
            var full = Inside(path, setting);
            if (!File.Exists(full)) throw new RaeJobException($"{owner}: {setting} not found: {full}.");
        }
    }
}
