using System.Text.RegularExpressions;

namespace RAE.Configuration;

/// <summary>
/// <c>eval</c>: online evaluation during training (spec §4.9, §7.2, §10). The reference's keys plus ours:
/// <c>num_samples</c> (images per evaluation), <c>seed</c> (sampling seed; default training.global_seed) and
/// <c>inception_path</c> (the FID Inception weights; without them Stage 2 reports fd_resnet18). <c>data_path</c> names the
/// cluster's image dataset the metric compares with (default: the training data's dataset).
/// </summary>
public sealed record EvalConfig
{
    public static readonly IReadOnlyList<string> KnownMetrics = ["psnr", "ssim", "rfid", "lpips", "fid", "fd_resnet18", "rfd_resnet18"];

    public long EvalInterval { get; init; } = 5000;
    public bool EvalModel { get; init; }
    public string? DataPath { get; init; }
    public string? ReferenceNpzPath { get; init; }
    public IReadOnlyList<string> Metrics { get; init; } = [];
    public const int DefaultNumSamples = 64;

    public int NumSamples { get; init; } = DefaultNumSamples;
    public long? Seed { get; init; }
    public string? InceptionPath { get; init; }

    internal static EvalConfig Parse(ConfigSection section)
    {
        var parsed = new EvalConfig
        {
            EvalInterval = section.Long("eval_interval", 5000),
            EvalModel = section.Bool("eval_model", false),
            DataPath = section.OptionalString("data_path"),
            ReferenceNpzPath = section.OptionalString("reference_npz_path"),
            Metrics = section.OptionalStringList("metrics") ?? [],
            NumSamples = section.Int("num_samples", DefaultNumSamples),
            Seed = section.OptionalLong("seed"),
            InceptionPath = section.OptionalString("inception_path"),
        };
        section.Require(parsed.EvalInterval > 0, "eval_interval", "must be > 0");
        section.Require(parsed.NumSamples > 0, "num_samples", "must be > 0");
        foreach (var metric in parsed.Metrics)
            section.Require(KnownMetrics.Contains(metric), "metrics", $"'{metric}' is not one of: {string.Join(", ", KnownMetrics)}");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("eval_interval", EvalInterval)
        .Add("eval_model", EvalModel)
        .Add("data_path", DataPath)
        .Add("reference_npz_path", ReferenceNpzPath)
        .Add("metrics", Metrics)
        // Our keys only when set, so the reference's eval sections keep their canonical form.
        .AddIfSet("num_samples", NumSamples == DefaultNumSamples ? null : NumSamples)
        .AddIfSet("seed", Seed)
        .AddIfSet("inception_path", InceptionPath);
}

public enum DataSource
{
    /// <summary>An ImageNet-style folder of class folders.</summary>
    ImageFolder,
    /// <summary>Seeded random class-conditional latents of shape misc.latent_size: no encoder, no images (tiny runs, tests).</summary>
    SyntheticLatents,
    /// <summary>A latent dataset of the cluster's blob store (<c>latents/NAME/</c>, written by an encode job), named by <c>data.dataset</c>.</summary>
    Latents,
    /// <summary>An image dataset of the cluster's blob store (<c>rae datasets add</c>), by <c>data.name</c>; <c>num_samples</c> is its image count.</summary>
    Dataset,
}

/// <summary>
/// <c>data</c> — our extension (the reference takes the data path on the command line): where training images or latents come from.
/// </summary>
public sealed partial record DataConfig
{
    public DataSource Source { get; init; } = DataSource.ImageFolder;
    public string? Path { get; init; }
    /// <summary>The image dataset's name with source <c>dataset</c> (Stage 1 decoder training).</summary>
    public string? Name { get; init; }
    public int ImageSize { get; init; } = 256;
    /// <summary>Size of the synthetic data set; required, never assumed, for the synthetic source.</summary>
    public int NumSamples { get; init; } = 1024;
    public long Seed { get; init; }
    /// <summary>The latent dataset's name (<c>latents/NAME/</c> in the blob store); required with source <c>latents</c>.</summary>
    public string? Dataset { get; init; }

    private static readonly Dictionary<string, DataSource> SourceNames = new(StringComparer.Ordinal)
    {
        ["imagefolder"] = DataSource.ImageFolder,
        ["synthetic-latents"] = DataSource.SyntheticLatents,
        ["latents"] = DataSource.Latents,
        ["dataset"] = DataSource.Dataset,
    };

    public static string SourceName(DataSource source) => SourceNames.First(entry => entry.Value == source).Key;

    internal static DataConfig Parse(ConfigSection section)
    {
        var source = section.Choice("source", "imagefolder", SourceNames.Keys.ToArray());
        var parsed = new DataConfig
        {
            Source = SourceNames[source],
            Path = section.OptionalString("path"),
            Name = section.OptionalString("name"),
            ImageSize = section.Int("image_size", 256),
            NumSamples = section.Int("num_samples", 1024),
            Seed = section.Long("seed", 0),
            Dataset = section.OptionalString("dataset"),
        };
        section.Require(parsed.Source != DataSource.Latents || parsed.Dataset is not null, "dataset",
            "is required with source 'latents' (the name of a latent dataset written by 'rae encode'; 'rae train --data NAME' sets both)");
        section.Require(parsed.Dataset is null || DatasetNamePattern().IsMatch(parsed.Dataset) && parsed.Dataset.Length <= 64, "dataset",
            $"'{parsed.Dataset}' is not a dataset name (1..64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit)");
        section.Require(parsed.Dataset is null || parsed.Source == DataSource.Latents, "dataset", "is only used with source 'latents'");
        section.Require(parsed.ImageSize > 0, "image_size", "must be positive");
        section.Require(parsed.Source != DataSource.SyntheticLatents || section.Has("num_samples"), "num_samples",
            "is required with source 'synthetic-latents' (the size of the synthetic data set, which sets the steps per epoch)");
        section.Require(parsed.NumSamples > 0, "num_samples", "must be positive");
        section.Require(parsed.Source != DataSource.Dataset || !string.IsNullOrWhiteSpace(parsed.Name), "name",
            "is required with source 'dataset' (the name given to rae datasets add; rae train --data NAME sets it)");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("source", SourceName(Source))
        .AddIfSet("dataset", Dataset)
        .Add("path", Path)
        .AddIfSet("name", Name)
        .Add("image_size", ImageSize)
        .Add("num_samples", NumSamples)
        .Add("seed", Seed);

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]*$")]
    private static partial Regex DatasetNamePattern();
}
