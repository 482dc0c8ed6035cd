namespace RAE.Configuration;

/// <summary><c>eval</c>: online evaluation during training (spec §4.9, §7.2, §10).</summary>
public sealed record EvalConfig
{
    public static readonly IReadOnlyList<string> KnownMetrics = ["psnr", "ssim", "rfid", "lpips", "fid"];

    public long EvalInterval { get; init; } = 5000;
    public bool EvalModel { get; init; }
    public string? DataPath { get; init; }
    public string? ReferenceNpzPath { get; init; }
    public IReadOnlyList<string> Metrics { get; init; } = [];

    internal static EvalConfig Parse(ConfigSection section)
    {
        var parsed = new EvalConfig
        {
            EvalInterval = section.Long("eval_interval", 5000),
            EvalModel = section.Bool("eval_model", false),
            DataPath = section.OptionalString("data_path"),
            ReferenceNpzPath = section.OptionalString("reference_npz_path"),
            Metrics = section.OptionalStringList("metrics") ?? [],
        };
        section.Require(parsed.EvalInterval > 0, "eval_interval", "must be > 0");
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
        .Add("metrics", Metrics);
}

public enum DataSource
{
    /// <summary>An ImageNet-style folder of class folders.</summary>
    ImageFolder,
    /// <summary>Seeded random class-conditional latents of shape misc.latent_size: no encoder, no images (tiny runs, tests).</summary>
    SyntheticLatents,
    /// <summary>An image dataset of the cluster's blob store (<c>rae datasets add</c>), by <c>data.name</c>; <c>num_samples</c> is its image count.</summary>
    Dataset,
}

/// <summary>
/// <c>data</c> — our extension (the reference takes the data path on the command line): where training images or latents come from.
/// </summary>
public sealed record DataConfig
{
    public DataSource Source { get; init; } = DataSource.ImageFolder;
    public string? Path { get; init; }
    /// <summary>The dataset's name with source 'dataset'.</summary>
    public string? Name { get; init; }
    public int ImageSize { get; init; } = 256;
    /// <summary>Size of the synthetic data set; required, never assumed, for the synthetic source.</summary>
    public int NumSamples { get; init; } = 1024;
    public long Seed { get; init; }

    internal static DataConfig Parse(ConfigSection section)
    {
        var source = section.Choice("source", "imagefolder", ["imagefolder", "synthetic-latents", "dataset"]);
        var parsed = new DataConfig
        {
            Source = source switch { "imagefolder" => DataSource.ImageFolder, "dataset" => DataSource.Dataset, _ => DataSource.SyntheticLatents },
            Path = section.OptionalString("path"),
            Name = section.OptionalString("name"),
            ImageSize = section.Int("image_size", 256),
            NumSamples = section.Int("num_samples", 1024),
            Seed = section.Long("seed", 0),
        };
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
        .Add("source", Source switch { DataSource.ImageFolder => "imagefolder", DataSource.Dataset => "dataset", _ => "synthetic-latents" })
        .Add("path", Path)
        .AddIfSet("name", Name)
        .Add("image_size", ImageSize)
        .Add("num_samples", NumSamples)
        .Add("seed", Seed);
}
