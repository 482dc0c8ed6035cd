namespace RAE.Configuration;

/// <summary>Which guided forward the sampler calls (reference guidance.method).</summary>
public enum GuidanceMethod
{
    Cfg,
    Autoguidance,
}

/// <summary>
/// <c>guidance</c> (spec §1.1, §6.7): method, scale, the time interval [t_min, t_max] in which guidance applies (also spelled
/// <c>t-min</c>/<c>t-max</c>), and for autoguidance the guide model. Guidance is active only when <see cref="Scale"/> &gt; 1.
/// </summary>
public sealed record GuidanceConfig
{
    public GuidanceMethod Method { get; init; } = GuidanceMethod.Cfg;
    public double Scale { get; init; } = 1.0;
    public double TMin { get; init; }
    public double TMax { get; init; } = 1.0;
    public Stage2Config? GuidanceModel { get; init; }

    public bool IsActive => Scale > 1.0;

    /// <summary>No guidance: the plain forward.</summary>
    public static GuidanceConfig None { get; } = new();

    /// <summary>The method of a reference name ("cfg" or "autoguidance").</summary>
    public static GuidanceMethod ParseMethod(string name) => name switch
    {
        "cfg" => GuidanceMethod.Cfg,
        "autoguidance" => GuidanceMethod.Autoguidance,
        _ => throw new ArgumentException($"unknown guidance method '{name}': expected 'cfg' or 'autoguidance'"),
    };

    internal static GuidanceConfig Parse(ConfigSection section)
    {
        var method = section.Choice("method", "cfg", ["cfg", "autoguidance"]);
        var parsed = new GuidanceConfig
        {
            Method = method == "cfg" ? GuidanceMethod.Cfg : GuidanceMethod.Autoguidance,
            Scale = section.Double("scale", 1.0),
            TMin = section.Double("t_min", 0.0, "t-min"),
            TMax = section.Double("t_max", 1.0, "t-max"),
            GuidanceModel = section.OptionalSection("guidance_model") is { } model ? Stage2Config.Parse(model) : null,
        };
        section.Require(parsed.Scale >= 0, "scale", $"must be >= 0, got {parsed.Scale}");
        var tMinKey = section.Find("t_min", "t-min")?.Key ?? "t_min";
        section.Require(parsed.TMin is >= 0 and <= 1, tMinKey, $"must be in [0, 1], got {parsed.TMin}");
        var tMaxKey = section.Find("t_max", "t-max")?.Key ?? "t_max";
        section.Require(parsed.TMax is >= 0 and <= 1, tMaxKey, $"must be in [0, 1], got {parsed.TMax}");
        section.Require(parsed.TMin < parsed.TMax, tMinKey, $"must be below t_max ({parsed.TMin} >= {parsed.TMax})");
        section.Require(!(parsed.Method == GuidanceMethod.Autoguidance && parsed.IsActive && parsed.GuidanceModel is null),
            "guidance_model", $"is required for autoguidance with scale {parsed.Scale} > 1");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("method", Method == GuidanceMethod.Cfg ? "cfg" : "autoguidance")
        .Add("scale", Scale)
        .Add("t_min", TMin)
        .Add("t_max", TMax)
        .Add("guidance_model", GuidanceModel?.ToYaml());
}

/// <summary>
/// <c>misc</c> (spec §1.1, §6.3): latent shape, classes, null label and the inputs of the dimension-dependent time shift
/// <c>sqrt(time_dist_shift_dim / time_dist_shift_base)</c>.
/// </summary>
public sealed record MiscConfig
{
    public IReadOnlyList<int> LatentSize { get; init; } = [768, 16, 16];
    public int NumClasses { get; init; } = 1000;
    /// <summary>As written; null means the default, <see cref="NumClasses"/>.</summary>
    public int? NullLabelSetting { get; init; }
    /// <summary>As written; null means the default, the product of <see cref="LatentSize"/>.</summary>
    public long? TimeDistShiftDimSetting { get; init; }
    public double TimeDistShiftBase { get; init; } = 4096;

    public int NullLabel => NullLabelSetting ?? NumClasses;

    public long TimeDistShiftDim => TimeDistShiftDimSetting ?? LatentSize.Aggregate(1L, (product, size) => product * size);

    /// <summary>The time shift s = sqrt(dim / base), for example sqrt(196608 / 4096) = sqrt(48) for 256-px DINOv2 latents.</summary>
    public double TimeDistShift => Math.Sqrt(TimeDistShiftDim / TimeDistShiftBase);

    internal static MiscConfig Parse(ConfigSection section)
    {
        var latent = section.OptionalLongList("latent_size") ?? [768, 16, 16];
        section.Require(latent.Count == 3 && latent.All(size => size is > 0 and <= int.MaxValue), "latent_size",
            $"expected three positive integers [C, H, W], got [{string.Join(", ", latent)}]");
        var parsed = new MiscConfig
        {
            LatentSize = latent.Select(size => (int)size).ToArray(),
            NumClasses = section.Int("num_classes", 1000),
            NullLabelSetting = section.OptionalInt("null_label"),
            TimeDistShiftDimSetting = section.OptionalLong("time_dist_shift_dim"),
            TimeDistShiftBase = section.Double("time_dist_shift_base", 4096),
        };
        section.Require(parsed.NumClasses > 0, "num_classes", "must be positive");
        section.Require(parsed.NullLabel >= 0 && parsed.NullLabel <= parsed.NumClasses, "null_label",
            $"{parsed.NullLabel} must be in [0, num_classes = {parsed.NumClasses}]");
        section.Require(parsed.TimeDistShiftDim > 0, "time_dist_shift_dim", "must be positive");
        section.Require(parsed.TimeDistShiftBase > 0, "time_dist_shift_base", "must be positive");
        section.Require(parsed.TimeDistShift >= 1, parsed.TimeDistShiftDimSetting is null ? "time_dist_shift_base" : "time_dist_shift_dim",
            $"the time shift sqrt({parsed.TimeDistShiftDim} / {parsed.TimeDistShiftBase}) = {parsed.TimeDistShift:G6} must be >= 1");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("latent_size", LatentSize)
        .Add("num_classes", NumClasses)
        .Add("null_label", NullLabel)
        .Add("time_dist_shift_dim", TimeDistShiftDim)
        .Add("time_dist_shift_base", TimeDistShiftBase);
}
