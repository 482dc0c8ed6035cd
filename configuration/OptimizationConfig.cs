namespace RAE.Configuration;

/// <summary><c>optimizer</c>: AdamW (spec §4.8; eps 1e-8 as the reference).</summary>
public sealed record OptimizerConfig
{
    public double Lr { get; init; } = 2e-4;
    public IReadOnlyList<double> Betas { get; init; } = [0.9, 0.95];
    public double WeightDecay { get; init; }
    public double Eps { get; init; } = 1e-8;

    internal static OptimizerConfig Parse(ConfigSection section, OptimizerConfig seed)
    {
        var parsed = new OptimizerConfig
        {
            Lr = section.Double("lr", seed.Lr),
            Betas = section.OptionalDoubleList("betas") ?? seed.Betas,
            WeightDecay = section.Double("weight_decay", seed.WeightDecay),
            Eps = section.Double("eps", seed.Eps),
        };
        Validate(section, parsed, "lr", "betas", "weight_decay");
        section.Require(parsed.Eps > 0, "eps", "must be > 0");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal static void Validate(ConfigSection section, OptimizerConfig optimizer, string lrKey, string betasKey, string weightDecayKey)
    {
        section.Require(optimizer.Lr > 0, lrKey, $"must be > 0, got {optimizer.Lr}");
        section.Require(optimizer.Betas.Count == 2 && optimizer.Betas.All(beta => beta is >= 0 and < 1), betasKey,
            $"expected two numbers in [0, 1), got [{string.Join(", ", optimizer.Betas)}]");
        section.Require(optimizer.WeightDecay >= 0, weightDecayKey, "must be >= 0");
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder().Add("lr", Lr).Add("betas", Betas).Add("weight_decay", WeightDecay).Add("eps", Eps);
}

public enum LrScheduleType
{
    Linear,
    Cosine,
}

/// <summary>
/// <c>scheduler</c>: the per-step LR schedule of spec §4.8. Warmup and decay end are given either in epochs or in steps
/// (steps win in the reference; here giving both is an error). The schedule itself is computed in RAE.Models.Training.
/// </summary>
public sealed record SchedulerConfig
{
    public LrScheduleType Type { get; init; } = LrScheduleType.Cosine;
    public double? WarmupEpochs { get; init; } = 1;
    public long? WarmupSteps { get; init; }
    public double? DecayEndEpoch { get; init; } = 16;
    public long? DecayEndSteps { get; init; }
    public double BaseLr { get; init; } = 2e-4;
    public double FinalLr { get; init; } = 2e-5;
    public bool WarmupFromZero { get; init; } = true;

    /// <summary>Warmup length in optimizer steps for a given epoch length.</summary>
    public long WarmupStepCount(long stepsPerEpoch) => WarmupSteps ?? (long)((WarmupEpochs ?? 0) * stepsPerEpoch);

    /// <summary>Step at which the decay reaches <see cref="FinalLr"/> for a given epoch length.</summary>
    public long DecayEndStepCount(long stepsPerEpoch) => DecayEndSteps ?? (long)((DecayEndEpoch ?? 0) * stepsPerEpoch);

    /// <summary>Reads a <c>scheduler</c> section; keys it leaves out come from <paramref name="seed"/> (legacy flat keys).</summary>
    internal static SchedulerConfig Parse(ConfigSection section, SchedulerConfig seed)
    {
        var typeText = section.Choice("type", seed.Type == LrScheduleType.Linear ? "linear" : "cosine", ["linear", "cosine"]);
        var warmupSteps = section.OptionalLong("warmup_steps");
        var warmupEpochs = section.OptionalDouble("warmup_epochs", "decay_start_epoch");
        if (warmupSteps is not null && warmupEpochs is not null)
            throw section.Error("warmup_steps", "conflicts with the warmup given in epochs: give it in epochs or in steps, not both");
        var decaySteps = section.OptionalLong("decay_end_steps");
        var decayEpoch = section.OptionalDouble("decay_end_epoch");
        if (decaySteps is not null && decayEpoch is not null)
            throw section.Error("decay_end_steps", $"conflicts with '{section.KeyPath("decay_end_epoch")}': give the decay end in epochs or in steps, not both");
        var givesWarmup = warmupSteps is not null || warmupEpochs is not null;
        var givesDecay = decaySteps is not null || decayEpoch is not null;
        var parsed = new SchedulerConfig
        {
            Type = typeText == "linear" ? LrScheduleType.Linear : LrScheduleType.Cosine,
            WarmupSteps = givesWarmup ? warmupSteps : seed.WarmupSteps,
            WarmupEpochs = givesWarmup ? warmupEpochs : seed.WarmupEpochs,
            DecayEndSteps = givesDecay ? decaySteps : seed.DecayEndSteps,
            DecayEndEpoch = givesDecay ? decayEpoch : seed.DecayEndEpoch,
            BaseLr = section.Double("base_lr", seed.BaseLr),
            FinalLr = section.Double("final_lr", seed.FinalLr),
            WarmupFromZero = section.Bool("warmup_from_zero", seed.WarmupFromZero),
        };
        parsed.Validate(section);
        section.RejectUnknownKeys();
        return parsed;
    }

    /// <param name="keyOf">maps a scheduler key to the key the value was read from (legacy flat keys differ).</param>
    internal void Validate(ConfigSection section, Func<string, string>? keyOf = null)
    {
        keyOf ??= key => key;
        section.Require(WarmupSteps is null or >= 0, keyOf("warmup_steps"), "must be >= 0");
        section.Require(WarmupEpochs is null or >= 0, keyOf("warmup_epochs"), "must be >= 0");
        section.Require(DecayEndSteps is null or >= 0, keyOf("decay_end_steps"), "must be >= 0");
        section.Require(DecayEndEpoch is null or >= 0, keyOf("decay_end_epoch"), "must be >= 0");
        if (WarmupSteps is { } ws && DecayEndSteps is { } ds)
            section.Require(ds >= ws, keyOf("decay_end_steps"), $"{ds} is before the end of the warmup ({ws})");
        if (WarmupEpochs is { } we && DecayEndEpoch is { } de)
            section.Require(de >= we, keyOf("decay_end_epoch"), $"{de} is before the end of the warmup ({we})");
        section.Require(BaseLr > 0, keyOf("base_lr"), $"must be > 0, got {BaseLr}");
        section.Require(FinalLr >= 0, keyOf("final_lr"), $"must be >= 0, got {FinalLr}");
    }

    internal YamlMapBuilder ToYaml()
    {
        var builder = new YamlMapBuilder().Add("type", Type == LrScheduleType.Linear ? "linear" : "cosine");
        if (WarmupSteps is { } warmupSteps) builder.Add("warmup_steps", warmupSteps);
        else builder.Add("warmup_epochs", WarmupEpochs ?? 0);
        if (DecayEndSteps is { } decaySteps) builder.Add("decay_end_steps", decaySteps);
        else builder.Add("decay_end_epoch", DecayEndEpoch ?? 0);
        return builder.Add("base_lr", BaseLr).Add("final_lr", FinalLr).Add("warmup_from_zero", WarmupFromZero);
    }
}
