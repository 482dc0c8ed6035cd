using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace RAE.Configuration;

/// <summary>
/// One configuration file in the reference's OmegaConf schema (spec §1): <c>stage_1</c>, <c>stage_2</c>, <c>transport</c>,
/// <c>sampler</c>, <c>guidance</c>, <c>misc</c>, <c>training</c>, <c>eval</c>, <c>gan</c>, plus our own <c>data</c>. Read with the
/// YAML representation model so every unknown or ill-typed key is reported with its full dotted path, file and line.
/// Sections the reference reads with defaults (transport, sampler, guidance, misc) are never null.
/// </summary>
public sealed record RaeConfig
{
    public static readonly IReadOnlyList<string> SectionNames =
        ["stage_1", "stage_2", "transport", "sampler", "guidance", "misc", "training", "eval", "gan", "data"];

    /// <summary>The file path or name the configuration was read from.</summary>
    public string SourceName { get; init; } = "<memory>";

    public Stage1Config? Stage1 { get; init; }
    public Stage2Config? Stage2 { get; init; }
    public TransportConfig Transport { get; init; } = new();
    public SamplerConfig Sampler { get; init; } = new();
    public GuidanceConfig Guidance { get; init; } = new();
    public MiscConfig Misc { get; init; } = new();
    public TrainingConfig? Training { get; init; }
    public EvalConfig? Eval { get; init; }
    public GanConfig? Gan { get; init; }
    public DataConfig? Data { get; init; }

    /// <summary>The time shift used by transport and sampler: sqrt(time_dist_shift_dim / time_dist_shift_base) from <c>misc</c>.</summary>
    public double TimeDistShift => Misc.TimeDistShift;

    /// <summary>Guidance scale for in-training sampling: the legacy <c>training.cfg_scale</c> when set, else <c>guidance.scale</c>.</summary>
    public double TrainingGuidanceScale => Training?.CfgScale ?? Guidance.Scale;

    public static RaeConfig Load(string path, IEnumerable<string>? overrides = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"configuration file not found: {path}", path);
        return Parse(File.ReadAllText(path), path, overrides);
    }

    /// <param name="overrides"><c>key.path=value</c> assignments applied on top of the text, in order.</param>
    public static RaeConfig Parse(string yamlText, string sourceName, IEnumerable<string>? overrides = null)
    {
        var origin = new ConfigOrigin(sourceName);
        var root = LoadRoot(yamlText, origin);
        foreach (var assignment in overrides ?? []) ConfigOverrides.Apply(root, assignment, origin);
        return FromTree(new ConfigSection(root, "", origin), sourceName);
    }

    /// <summary>This configuration with <c>key.path=value</c> overrides applied and everything validated again.</summary>
    public RaeConfig WithOverrides(IEnumerable<string> overrides) => Parse(ToYaml(), SourceName, overrides);

    /// <summary>Canonical YAML in the reference schema, defaults written out, legacy keys in their current form; parses back to an equal configuration.</summary>
    public string ToYaml()
    {
        var root = new YamlMapBuilder()
            .Add("stage_1", Stage1?.ToYaml())
            .Add("stage_2", Stage2?.ToYaml())
            .Add("transport", Transport.ToYaml())
            .Add("sampler", Sampler.ToYaml())
            .Add("guidance", Guidance.ToYaml())
            .Add("misc", Misc.ToYaml())
            .Add("training", Training?.ToYaml())
            .Add("eval", Eval?.ToYaml())
            .Add("gan", Gan?.ToYaml())
            .Add("data", Data?.ToYaml());
        using var writer = new StringWriter { NewLine = "\n" };
        new YamlStream(new YamlDocument(root.Node)).Save(writer, assignAnchors: false);
        var text = writer.ToString();
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }

    public void Save(string path) => File.WriteAllText(path, ToYaml());

    private static YamlMappingNode LoadRoot(string yamlText, ConfigOrigin origin)
    {
        var stream = new YamlStream();
        try
        {
            YamlNestingGuard.Check(yamlText, origin.SourceName);
            stream.Load(new StringReader(yamlText));
        }
        catch (YamlException error)
        {
            var line = error.Start.Line > 0 ? (int?)error.Start.Line : null;
            throw new ConfigException(origin.SourceName, null, line, $"not valid YAML: {error.Message}", error);
        }
        if (stream.Documents.Count == 0) return new YamlMappingNode();
        if (stream.Documents.Count > 1) throw origin.Error(stream.Documents[1].RootNode, null, "holds more than one YAML document");
        return stream.Documents[0].RootNode switch
        {
            YamlMappingNode mapping => mapping,
            var node when ConfigScalars.IsNull(node) => new YamlMappingNode(),
            var node => throw origin.Error(node, null, "the top level must be a mapping of sections (stage_1, stage_2, training, ...)"),
        };
    }

    private static RaeConfig FromTree(ConfigSection root, string sourceName)
    {
        var config = new RaeConfig
        {
            SourceName = sourceName,
            Stage1 = root.OptionalSection("stage_1") is { } stage1 ? Stage1Config.Parse(stage1) : null,
            Stage2 = root.OptionalSection("stage_2") is { } stage2 ? Stage2Config.Parse(stage2) : null,
            Transport = TransportConfig.Parse(root.Section("transport")),
            Sampler = SamplerConfig.Parse(root.Section("sampler")),
            Guidance = GuidanceConfig.Parse(root.Section("guidance")),
            Misc = MiscConfig.Parse(root.Section("misc")),
            Training = root.OptionalSection("training") is { } training ? TrainingConfig.Parse(training) : null,
            Eval = root.OptionalSection("eval") is { } eval ? EvalConfig.Parse(eval) : null,
            Gan = root.OptionalSection("gan") is { } gan ? GanConfig.Parse(gan) : null,
            Data = root.OptionalSection("data") is { } data ? DataConfig.Parse(data) : null,
        };
        root.RejectUnknownKeys();
        config.CheckConsistency(root);
        return config;
    }

    /// <summary>Stage-2 models must match the latent of <c>misc</c> and each other (the reference would fail later, at run time).</summary>
    private void CheckConsistency(ConfigSection root)
    {
        if (Stage2 is not null) CheckAgainstMisc(root, "stage_2", Stage2.Params);
        if (Guidance.GuidanceModel is { } guide) CheckAgainstMisc(root, "guidance.guidance_model", guide.Params);
    }

    private void CheckAgainstMisc(ConfigSection root, string section, Stage2ModelParams model)
    {
        var latent = Misc.LatentSize;
        if (model.InChannels != latent[0])
            throw root.Error(section.Split('.')[0], $"{section}.params.in_channels {model.InChannels} differs from misc.latent_size channels {latent[0]}");
        if (model.InputSize != latent[1] || model.InputSize != latent[2])
            throw root.Error(section.Split('.')[0], $"{section}.params.input_size {model.InputSize} differs from the misc.latent_size grid {latent[1]}x{latent[2]}");
        if (model.NumClasses != Misc.NumClasses)
            throw root.Error(section.Split('.')[0], $"{section}.params.num_classes {model.NumClasses} differs from misc.num_classes {Misc.NumClasses}");
    }
}
