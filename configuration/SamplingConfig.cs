namespace RAE.Configuration;

/// <summary>How training times are drawn: <c>uniform</c>, or <c>logit-normal_μ_σ</c> (truncated logit-normal, spec §6.3).</summary>
public sealed record TimeDistribution(string Name, bool IsLogitNormal, double Mu, double Sigma)
{
    public static readonly TimeDistribution Uniform = new("uniform", false, 0, 1);

    internal static TimeDistribution Parse(ConfigSection section, string key, string text)
    {
        if (text == "uniform") return Uniform;
        var parts = text.Split('_');
        if (parts.Length == 3 && parts[0] == "logit-normal"
            && ConfigScalars.TryDouble(parts[1], out var mu) && ConfigScalars.TryDouble(parts[2], out var sigma))
        {
            section.Require(sigma > 0, key, $"'{text}': the logit-normal sigma must be > 0");
            return new TimeDistribution(text, true, mu, sigma);
        }
        throw section.Error(key, $"'{text}' is neither 'uniform' nor 'logit-normal_<mu>_<sigma>' (for example 'logit-normal_0_1')");
    }
}

/// <summary><c>transport.params</c> (spec §6.1). <c>time_dist_shift</c> is accepted but ignored: the shift always comes from <c>misc</c>.</summary>
public sealed record TransportConfig
{
    public static readonly IReadOnlyList<string> PathTypes = ["Linear", "GVP", "VP"];
    public static readonly IReadOnlyList<string> Predictions = ["velocity", "noise", "score"];
    public static readonly IReadOnlyList<string> LossWeights = ["velocity", "likelihood"];

    public string PathType { get; init; } = "Linear";
    public string Prediction { get; init; } = "velocity";
    /// <summary>null (no weighting), 'velocity' or 'likelihood'.</summary>
    public string? LossWeight { get; init; }
    public TimeDistribution TimeDistribution { get; init; } = TimeDistribution.Uniform;
    public double? TrainEps { get; init; }
    public double? SampleEps { get; init; }

    internal static TransportConfig Parse(ConfigSection section)
    {
        var parameters = section.Section("params");
        var lossWeight = parameters.OptionalString("loss_weight");
        if (lossWeight is not null && !LossWeights.Contains(lossWeight))
            throw parameters.Error("loss_weight", $"'{lossWeight}' is not one of: null, {string.Join(", ", LossWeights)}");
        var parsed = new TransportConfig
        {
            PathType = parameters.Choice("path_type", "Linear", PathTypes.ToArray()),
            Prediction = parameters.Choice("prediction", "velocity", Predictions.ToArray()),
            LossWeight = lossWeight,
            TimeDistribution = TimeDistribution.Parse(parameters, "time_dist_type", parameters.String("time_dist_type", "uniform")),
            TrainEps = parameters.OptionalDouble("train_eps"),
            SampleEps = parameters.OptionalDouble("sample_eps"),
        };
        parameters.Require(parsed.TrainEps is null or (>= 0 and < 1), "train_eps", "must be in [0, 1)");
        parameters.Require(parsed.SampleEps is null or (>= 0 and < 1), "sample_eps", "must be in [0, 1)");
        parameters.Accept("time_dist_shift");
        parameters.RejectUnknownKeys();
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder().Add("params", new YamlMapBuilder()
        .Add("path_type", PathType)
        .Add("prediction", Prediction)
        .Add("loss_weight", LossWeight)
        .Add("time_dist_type", TimeDistribution.Name)
        .AddIfSet("train_eps", TrainEps)
        .AddIfSet("sample_eps", SampleEps));
}

public enum SamplerMode
{
    ODE,
    SDE,
}

/// <summary>
/// <c>sampler</c>: mode and the params passed to the sampler factory (spec §6.5, §6.6). Which params are allowed depends on
/// the mode, as the reference passes them as keyword arguments; fields of the other mode keep their defaults.
/// </summary>
public sealed record SamplerConfig
{
    public static readonly IReadOnlyList<string> OdeMethods =
        ["euler", "midpoint", "rk4", "heun2", "heun3", "dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"];
    public static readonly IReadOnlyList<string> SdeMethods = ["euler", "heun"];
    public static readonly IReadOnlyList<string> DiffusionForms =
        ["constant", "SBDM", "sigma", "linear", "decreasing", "increasing-decreasing"];
    public static readonly IReadOnlyList<string> LastSteps = ["Mean", "Euler", "Tweedie"];

    public SamplerMode Mode { get; init; } = SamplerMode.ODE;
    public string SamplingMethod { get; init; } = "dopri5";
    /// <summary>Number of time points (ODE: grid points, so num_steps − 1 integration steps).</summary>
    public int NumSteps { get; init; } = 50;
    public double Atol { get; init; } = 1e-6;
    public double Rtol { get; init; } = 1e-3;
    public bool Reverse { get; init; }
    public string DiffusionForm { get; init; } = "SBDM";
    public double DiffusionNorm { get; init; } = 1.0;
    /// <summary>SDE last step: null (none), 'Mean', 'Euler' or 'Tweedie'.</summary>
    public string? LastStep { get; init; } = "Mean";
    public double LastStepSize { get; init; } = 0.04;
    /// <summary>Our key for sample_ddp.py's <c>--precision</c>: <c>fp32</c> (default) or <c>bf16</c> (autocast around the
    /// model's forward passes; the sampler's state and arithmetic stay fp32).</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Float32;

    internal static SamplerConfig Parse(ConfigSection section)
    {
        // The reference upper-cases the mode before comparing.
        var modeText = section.String("mode", "ODE");
        var mode = modeText.ToUpperInvariant() switch
        {
            "ODE" => SamplerMode.ODE,
            "SDE" => SamplerMode.SDE,
            _ => throw section.Error("mode", $"'{modeText}' is not one of: ODE, SDE"),
        };
        var parameters = section.Section("params");
        var parsed = (mode == SamplerMode.ODE ? ParseOde(parameters) : ParseSde(parameters)) with
        {
            Precision = ComputePrecisions.Parse(section.Choice("precision", "fp32", ["fp32", "bf16"])),
        };
        parameters.Require(parsed.NumSteps >= 2, "num_steps", $"must be >= 2, got {parsed.NumSteps}");
        parameters.RejectUnknownKeys();
        section.RejectUnknownKeys();
        return parsed;
    }

    private static SamplerConfig ParseOde(ConfigSection parameters)
    {
        var parsed = new SamplerConfig
        {
            Mode = SamplerMode.ODE,
            SamplingMethod = parameters.Choice("sampling_method", "dopri5", OdeMethods.ToArray()),
            NumSteps = parameters.Int("num_steps", 50),
            Atol = parameters.Double("atol", 1e-6),
            Rtol = parameters.Double("rtol", 1e-3),
            Reverse = parameters.Bool("reverse", false),
        };
        parameters.Require(parsed.Atol > 0, "atol", "must be > 0");
        parameters.Require(parsed.Rtol > 0, "rtol", "must be > 0");
        parameters.Require(!parsed.Reverse, "reverse", "reverse (data → noise) sampling is not supported; the reference fails on it too");
        return parsed;
    }

    private static SamplerConfig ParseSde(ConfigSection parameters)
    {
        var lastStep = parameters.OptionalString("last_step");
        if (lastStep is "None") lastStep = null;
        if (lastStep is not null && !LastSteps.Contains(lastStep))
            throw parameters.Error("last_step", $"'{lastStep}' is not one of: null, {string.Join(", ", LastSteps)}");
        var parsed = new SamplerConfig
        {
            Mode = SamplerMode.SDE,
            SamplingMethod = parameters.Choice("sampling_method", "euler", SdeMethods.ToArray()),
            DiffusionForm = parameters.Choice("diffusion_form", "SBDM", DiffusionForms.ToArray()),
            DiffusionNorm = parameters.Double("diffusion_norm", 1.0),
            LastStep = parameters.Present("last_step") ? lastStep : "Mean",
            LastStepSize = parameters.Double("last_step_size", 0.04),
            NumSteps = parameters.Int("num_steps", 250),
        };
        parameters.Require(parsed.LastStepSize is > 0 and < 1, "last_step_size", "must be in (0, 1)");
        return parsed;
    }

    internal YamlMapBuilder ToYaml()
    {
        var parameters = new YamlMapBuilder().Add("sampling_method", SamplingMethod).Add("num_steps", NumSteps);
        if (Mode == SamplerMode.ODE)
            parameters.Add("atol", Atol).Add("rtol", Rtol).Add("reverse", Reverse);
        else
            parameters.Add("diffusion_form", DiffusionForm).Add("diffusion_norm", DiffusionNorm).Add("last_step", LastStep).Add("last_step_size", LastStepSize);
        return new YamlMapBuilder().Add("mode", Mode.ToString()).AddIfSet("precision", Precision == ComputePrecision.Float32 ? null : ComputePrecisions.Name(Precision)).Add("params", parameters);
    }
}
