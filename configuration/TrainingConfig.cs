namespace RAE.Configuration;

/// <summary>
/// <c>training</c> (spec §4.1, §7.1, §7.2) with the reference defaults of src/train.py. Legacy flat keys of the older
/// branches (§7.1, §11) are read too: <c>log_every</c> (= log_interval), <c>ckpt_every</c> (step-based checkpoints),
/// <c>base_lr</c>/<c>beta</c>/<c>wd</c> (optimizer fallbacks), <c>schedule_type</c>/<c>decay_start_epoch</c>/<c>decay_end_epoch</c>/
/// <c>base_lr</c>/<c>final_lr</c> (scheduler fallbacks, and a scheduler of their own when no <c>scheduler</c> section exists),
/// <c>batch_size</c> (per-process batch) and <c>cfg_scale</c> (overrides guidance.scale during training).
/// </summary>
public sealed record TrainingConfig
{
    private static readonly string[] LegacyScheduleKeys = ["schedule_type", "decay_start_epoch", "decay_end_epoch", "base_lr", "final_lr"];

    public int Epochs { get; init; } = 1400;
    /// <summary>Null when only the legacy per-process <see cref="BatchSize"/> is given.</summary>
    public int? GlobalBatchSize { get; init; }
    /// <summary>Legacy per-process batch size (<c>batch_size</c>); null when not given.</summary>
    public int? BatchSize { get; init; }
    public int GradAccumSteps { get; init; } = 1;
    public double EmaDecay { get; init; } = 0.9995;
    public int NumWorkers { get; init; } = 4;
    public int LogInterval { get; init; } = 100;
    /// <summary>Checkpoint every this many epochs.</summary>
    public int CheckpointInterval { get; init; } = 4;
    /// <summary>Legacy step-based checkpoint period (<c>ckpt_every</c>); null when not given.</summary>
    public long? CheckpointEverySteps { get; init; }
    public long SampleEvery { get; init; } = 2500;
    /// <summary>Gradient-norm clipping threshold; null (or a value &lt;= 0 in the file) means no clipping.</summary>
    public double? ClipGrad { get; init; } = 1.0;
    public long GlobalSeed { get; init; }
    /// <summary>Legacy <c>cfg_scale</c>: replaces guidance.scale for in-training sampling when set.</summary>
    public double? CfgScale { get; init; }
    /// <summary>Our extension: stop after this many optimizer steps (tiny runs); null = run all epochs.</summary>
    public long? MaxSteps { get; init; }
    /// <summary>Our extension, checkpoint retention (a union; the newest, and the newest with a finite loss, are always kept): the newest K
    /// (<c>keep_last</c>), every P steps (<c>keep_every</c>), the B lowest losses (<c>keep_best</c>). All null = the
    /// cluster's default (the newest three); naming any turns the unnamed ones off; 0 turns one off.</summary>
    public int? KeepLast { get; init; }
    public long? KeepEvery { get; init; }
    public int? KeepBest { get; init; }
    /// <summary>Our key for train.py's <c>--precision</c>: <c>fp32</c> (default) or <c>bf16</c> (autocast: bf16 matmuls and
    /// attention on fp32 parameters; fp32 norms, loss and optimizer; no loss scaling). fp16 is not offered.</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Float32;
    public OptimizerConfig Optimizer { get; init; } = new();
    /// <summary>Null means a constant learning rate.</summary>
    public SchedulerConfig? Scheduler { get; init; }

    internal static TrainingConfig Parse(ConfigSection section)
    {
        var legacyBaseLr = section.OptionalDouble("base_lr");
        var legacyFinalLr = section.OptionalDouble("final_lr");
        var legacyOptimizer = new OptimizerConfig
        {
            Lr = legacyBaseLr ?? 2e-4,
            Betas = section.OptionalDoubleList("beta") ?? [0.9, 0.95],
            WeightDecay = section.Double("wd", 0),
        };
        OptimizerConfig.Validate(section, legacyOptimizer, "base_lr", "beta", "wd");
        var optimizer = section.OptionalSection("optimizer") is { } optimizerSection
            ? OptimizerConfig.Parse(optimizerSection, legacyOptimizer)
            : legacyOptimizer;

        var epochs = section.Int("epochs", 1400);
        var schedulerSection = section.OptionalSection("scheduler");
        var legacyType = section.OptionalString("schedule_type");
        if (legacyType is not null and not ("linear" or "cosine"))
            throw section.Error("schedule_type", $"'{legacyType}' is not one of: linear, cosine");
        var legacyScheduler = new SchedulerConfig
        {
            Type = (legacyType ?? (schedulerSection is null ? "linear" : "cosine")) == "linear" ? LrScheduleType.Linear : LrScheduleType.Cosine,
            WarmupEpochs = section.OptionalDouble("decay_start_epoch") ?? (schedulerSection is null ? 0 : 1),
            DecayEndEpoch = section.OptionalDouble("decay_end_epoch") ?? (schedulerSection is null ? epochs : 16),
            BaseLr = legacyBaseLr ?? optimizer.Lr,
            FinalLr = legacyFinalLr ?? 2e-5,
            // The deprecated-gpu branch, where the flat keys come from, always warms up from zero.
            WarmupFromZero = true,
        };
        SchedulerConfig? scheduler = null;
        if (schedulerSection is not null)
            scheduler = SchedulerConfig.Parse(schedulerSection, legacyScheduler);
        else if (LegacyScheduleKeys.Any(section.Has))
        {
            legacyScheduler.Validate(section, key => key switch { "warmup_epochs" => "decay_start_epoch", "type" => "schedule_type", _ => key });
            scheduler = legacyScheduler;
        }

        var clipGrad = section.Present("clip_grad") ? section.OptionalDouble("clip_grad") : 1.0;
        var parsed = new TrainingConfig
        {
            Epochs = epochs,
            GlobalBatchSize = section.OptionalInt("global_batch_size"),
            BatchSize = section.OptionalInt("batch_size"),
            GradAccumSteps = section.Int("grad_accum_steps", 1),
            EmaDecay = section.Double("ema_decay", 0.9995),
            NumWorkers = section.Int("num_workers", 4),
            LogInterval = section.Int("log_interval", 100, "log_every"),
            CheckpointInterval = section.Int("checkpoint_interval", 4),
            CheckpointEverySteps = section.OptionalLong("ckpt_every"),
            SampleEvery = section.Long("sample_every", 2500),
            ClipGrad = clipGrad is > 0 ? clipGrad : null,
            GlobalSeed = section.Long("global_seed", 0),
            CfgScale = section.OptionalDouble("cfg_scale"),
            MaxSteps = section.OptionalLong("max_steps"),
            KeepLast = section.OptionalInt("keep_last"),
            KeepEvery = section.OptionalLong("keep_every"),
            KeepBest = section.OptionalInt("keep_best"),
            Precision = ComputePrecisions.Parse(section.Choice("precision", "fp32", ["fp32", "bf16"])),
            Optimizer = optimizer,
            Scheduler = scheduler,
        };
        parsed.Validate(section);
        section.RejectUnknownKeys();
        return parsed;
    }

    private void Validate(ConfigSection section)
    {
        section.Require(Epochs > 0, "epochs", $"must be > 0, got {Epochs}");
        section.Require(GlobalBatchSize is null or > 0, "global_batch_size", $"must be > 0, got {GlobalBatchSize}");
        section.Require(BatchSize is null or > 0, "batch_size", $"must be > 0, got {BatchSize}");
        section.Require(GradAccumSteps >= 1, "grad_accum_steps", $"must be >= 1, got {GradAccumSteps}");
        section.Require(GlobalBatchSize is null || GlobalBatchSize % GradAccumSteps == 0, "global_batch_size",
            $"{GlobalBatchSize} is not divisible by grad_accum_steps {GradAccumSteps}");
        section.Require(EmaDecay is >= 0 and <= 1, "ema_decay", $"must be in [0, 1], got {EmaDecay}");
        section.Require(NumWorkers >= 0, "num_workers", "must be >= 0");
        section.Require(LogInterval > 0, section.Find("log_interval", "log_every")?.Key ?? "log_interval", "must be > 0");
        section.Require(CheckpointInterval > 0, "checkpoint_interval", "must be > 0");
        section.Require(CheckpointEverySteps is null or > 0, "ckpt_every", "must be > 0");
        section.Require(SampleEvery > 0, "sample_every", "must be > 0");
        section.Require(CfgScale is null or >= 0, "cfg_scale", "must be >= 0");
        section.Require(MaxSteps is null or > 0, "max_steps", "must be > 0");
        section.Require(KeepLast is null or >= 0, "keep_last", $"must be >= 0 (0 = off), got {KeepLast}");
        section.Require(KeepEvery is null or >= 0, "keep_every", $"must be >= 0 (0 = off), got {KeepEvery}");
        section.Require(KeepBest is null or >= 0, "keep_best", $"must be >= 0 (0 = off), got {KeepBest}");
    }

    /// <summary>The global batch: <c>global_batch_size</c>, else the legacy per-process batch × processes × accumulation.</summary>
    public int ResolveGlobalBatchSize(int worldSize) => GlobalBatchSize ?? (BatchSize ?? 16) * worldSize * GradAccumSteps;

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("epochs", Epochs)
        .AddIfSet("global_batch_size", GlobalBatchSize)
        .AddIfSet("batch_size", BatchSize)
        .Add("grad_accum_steps", GradAccumSteps)
        .Add("ema_decay", EmaDecay)
        .Add("num_workers", NumWorkers)
        .Add("log_interval", LogInterval)
        .Add("checkpoint_interval", CheckpointInterval)
        .AddIfSet("ckpt_every", CheckpointEverySteps)
        .Add("sample_every", SampleEvery)
        .Add("clip_grad", ClipGrad ?? 0.0)
        .Add("global_seed", GlobalSeed)
        .AddIfSet("cfg_scale", CfgScale)
        .AddIfSet("max_steps", MaxSteps)
        .AddIfSet("keep_last", KeepLast)
        .AddIfSet("keep_every", KeepEvery)
        .AddIfSet("keep_best", KeepBest)
        .AddIfSet("precision", Precision == ComputePrecision.Float32 ? null : ComputePrecisions.Name(Precision))
        .Add("optimizer", Optimizer.ToYaml())
        .Add("scheduler", Scheduler?.ToYaml());
}
