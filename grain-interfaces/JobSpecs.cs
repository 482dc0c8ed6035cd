using RAE.Configuration;

namespace RAE.GrainInterfaces;

/// <summary>The one way a training job spec is built from a configuration (the CLI, benchmarks and tests all use it).</summary>
public static class TrainingJobSpecs
{
    /// <summary>The training workload of the DiT^DH rank worker.</summary>
    public const string DiTWorkload = "dit-dh";

    /// <summary>The Stage 1 (decoder) training workload.</summary>
    public const string DecoderWorkload = "rae-decoder";

    /// <summary>The workload a configuration trains when none is named: the decoder for a Stage 1 config (stage_1 without stage_2), else DiT^DH.</summary>
    public static string DefaultWorkloadOf(RaeConfig config) =>
        config.Stage2 is null && config.Stage1 is not null ? DecoderWorkload : DiTWorkload;

    /// <summary>
    /// Validates what a training job needs (<c>training</c>, <c>stage_2</c> and <c>data</c> sections) and fills the spec
    /// from the configuration: global batch, accumulation, steps (training.max_steps, else epochs x steps per epoch), seed,
    /// learning rate, weight decay, clipping, checkpoint interval, retention and the configuration in canonical form.
    /// <see cref="ConfigException"/> names the missing or bad key. With <c>data.source: latents</c> the epoch length
    /// comes from the latent dataset's size (<paramref name="latentDatasetSize"/>, read from its manifest by the caller).
    /// </summary>
    public static TrainingJobSpec FromConfig(RaeConfig config, int ranks, string workload = DiTWorkload, long? latentDatasetSize = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var training = config.Training ?? throw new ConfigException(config.SourceName, "training", null, "a training job needs a 'training' section");
        if (workload == DecoderWorkload)
        {
            if (config.Stage1 is null) throw new ConfigException(config.SourceName, "stage_1", null, "a Stage 1 (decoder) training job needs a 'stage_1' section");
        }
        else if (config.Stage2 is null) throw new ConfigException(config.SourceName, "stage_2", null, "a Stage 2 training job needs a 'stage_2' section");
        var data = RequireData(config);
        if (ranks < 1) throw new ArgumentOutOfRangeException(nameof(ranks), ranks, "a training job needs at least one rank");
        var globalBatch = training.ResolveGlobalBatchSize(ranks);
        var stepsPerEpoch = StepsPerEpoch(config.SourceName, data, globalBatch, latentDatasetSize);
        var steps = training.MaxSteps ?? training.Epochs * stepsPerEpoch;
        if (steps > int.MaxValue) throw new ConfigException(config.SourceName, "training.max_steps", null, $"{steps} steps is more than one job can run; set training.max_steps");
        var checkpointEvery = training.CheckpointEverySteps ?? training.CheckpointInterval * stepsPerEpoch;
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
            // The worker runs the config's own schedule (warm-up included).
            WarmupSteps = 0,
            Seed = training.GlobalSeed,
            CheckpointInterval = (int)Math.Clamp(checkpointEvery, 0, int.MaxValue),
            Retention = training.KeepLast is null && training.KeepEvery is null && training.KeepBest is null
                ? CheckpointRetentionPolicy.Default
                : new CheckpointRetentionPolicy { KeepLast = training.KeepLast ?? 0, KeepEvery = training.KeepEvery ?? 0, KeepBest = training.KeepBest ?? 0 },
            Config = JobConfiguration.From(config),
            OnlineEvaluation = OnlineEvaluationOf(config, workload, data),
        };
    }

    /// <summary>
    /// The job's online evaluation from the <c>eval</c> section; null without one. Stage 2 decodes its samples, so it needs
    /// <c>stage_1</c>; it reports fid when <c>metrics</c> asks for it and <c>inception_path</c> is given, else fd_resnet18.
    /// The reference dataset is <c>eval.data_path</c>, else the training data's (an image dataset, or a latent dataset's
    /// source, looked up when the job evaluates); synthetic latents have none, so they need <c>eval.data_path</c>.
    /// </summary>
    public static OnlineEvaluationSpec? OnlineEvaluationOf(RaeConfig config, string workload, DataConfig data)
    {
        if (config.Eval is not { } eval) return null;
        var reference = eval.DataPath ?? (data.Source == DataSource.Dataset ? data.Name : null);
        if (workload == DecoderWorkload)
        {
            var metrics = eval.Metrics.Where(m => m is "psnr" or "ssim" or "rfd_resnet18" or "rfid").Select(EvaluationMetrics.Parse).ToList();
            var rfid = metrics.Contains(EvaluationMetric.Rfid);
            if (rfid && eval.InceptionPath is null)
                throw new ConfigException(config.SourceName, "eval.inception_path", null, "metric rfid needs the pt_inception-2015-12-05 weights; set eval.inception_path or use rfd_resnet18");
            return new OnlineEvaluationSpec
            {
                Interval = eval.EvalInterval,
                Metric = metrics.Count > 0 ? metrics[0] : EvaluationMetric.Psnr,
                ReconstructionMetrics = metrics.Count > 0 ? metrics : [EvaluationMetric.Psnr, EvaluationMetric.Ssim],
                Samples = eval.NumSamples,
                Seed = eval.Seed ?? config.Training?.GlobalSeed ?? 0,
                ReferenceDataset = reference,
                InceptionWeightsPath = rfid ? eval.InceptionPath : null,
            };
        }
        if (config.Stage1 is null)
            throw new ConfigException(config.SourceName, "eval", null, "online evaluation samples images, so a Stage 2 job with an 'eval' section needs a 'stage_1' section (its decoder)");
        if (reference is null && data.Source != DataSource.Latents)
            throw new ConfigException(config.SourceName, "eval.data_path", null,
                $"online evaluation compares samples with an image dataset of the cluster; training on {data.Source} names none, so set eval.data_path to one (rae datasets add NAME DIR)");
        var fid = eval.Metrics.Contains("fid");
        if (fid && eval.InceptionPath is null)
            throw new ConfigException(config.SourceName, "eval.inception_path", null, "metric fid needs the pt_inception-2015-12-05 weights; set eval.inception_path or use fd_resnet18");
        return new OnlineEvaluationSpec
        {
            Interval = eval.EvalInterval,
            Metric = fid ? EvaluationMetric.Fid : EvaluationMetric.FdResNet18,
            Samples = eval.NumSamples,
            Seed = eval.Seed ?? config.Training?.GlobalSeed ?? 0,
            ReferenceDataset = reference,
            InceptionWeightsPath = fid ? eval.InceptionPath : null,
        };
    }

    /// <summary>The <c>data</c> section; a training job never falls back to made-up data when it is missing.</summary>
    public static DataConfig RequireData(RaeConfig config) => config.Data
        ?? throw new ConfigException(config.SourceName, "data", null,
            "a training job needs a 'data' section naming its data source (for a smoke run without a data set: data.source: synthetic-latents with data.num_samples)");

    /// <summary>
    /// Optimizer steps per epoch: the data set's samples over the global batch (last partial batch dropped, as the
    /// reference loader), at least 1. A latent dataset's size is <paramref name="latentDatasetSize"/> (its manifest's count).
    /// </summary>
    public static long StepsPerEpoch(string sourceName, DataConfig data, int globalBatch, long? latentDatasetSize = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var size = data.Source switch
        {
            DataSource.SyntheticLatents or DataSource.Dataset => data.NumSamples,
            DataSource.Latents => latentDatasetSize is > 0 ? latentDatasetSize.Value
                : throw new ConfigException(sourceName, "data.dataset", null,
                    $"the size of latent dataset '{data.Dataset}' comes from its manifest, which was not read (got {latentDatasetSize?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no size"})"),
            _ => throw new ConfigException(sourceName, "data.source", null, "an image folder has no known size here: add it to the cluster (rae datasets add NAME DIR), then train the decoder on it (data.source: dataset) or encode it (rae encode) and train DiT^DH on the latents (data.source: latents)"),
        };
        return Math.Max(1, size / Math.Max(1, globalBatch));
    }
}

/// <summary>The one way a sampling job spec is built (the CLI and tests use it); workers and grains never see YAML keys.</summary>
public static class SamplingJobSpecs
{
    /// <summary>
    /// A job that samples the model of <paramref name="config"/>, every class of it, from <paramref name="sourceTrainingJobId"/>'s
    /// checkpoint (<paramref name="sourceStep"/>, or the latest) or from a weights file (<paramref name="checkpointPath"/>,
    /// else stage_2.ckpt taken relative to the working directory, as the reference scripts do).
    /// </summary>
    public static SamplingJobSpec FromConfig(RaeConfig config, string? sourceTrainingJobId = null, long? sourceStep = null, string? checkpointPath = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Stage2 is null) throw new ConfigException(config.SourceName, "stage_2", null, "a sampling job needs a 'stage_2' section");
        if (sourceTrainingJobId is not null && checkpointPath is not null)
            throw new ArgumentException($"the weights come either from training job '{sourceTrainingJobId}' or from the file '{checkpointPath}', not both");
        var file = sourceTrainingJobId is not null ? null : checkpointPath ?? (string.IsNullOrWhiteSpace(config.Stage2.Ckpt) ? null : Path.GetFullPath(config.Stage2.Ckpt));
        return new SamplingJobSpec
        {
            SourceTrainingJobId = sourceTrainingJobId,
            SourceCheckpointStep = sourceStep,
            Classes = config.Misc.NumClasses,
            Config = JobConfiguration.From(config),
            CheckpointPath = file,
        };
    }

    /// <summary>A job without a configuration: it samples every class of the config.yaml stored in the training job's checkpoint.</summary>
    public static SamplingJobSpec FromTrainingJob(string trainingJobId, long? step = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(trainingJobId);
        return new SamplingJobSpec { SourceTrainingJobId = trainingJobId, SourceCheckpointStep = step, Classes = 0 };
    }
}
