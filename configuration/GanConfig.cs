namespace RAE.Configuration;

/// <summary><c>gan</c> (Stage-1 training only, spec §4.1, §4.4, §4.5): the DINO discriminator and the loss schedule.</summary>
public sealed record GanConfig
{
    public DiscriminatorConfig Disc { get; init; } = new();
    public GanLossConfig Loss { get; init; } = new();

    internal static GanConfig Parse(ConfigSection section)
    {
        var parsed = new GanConfig
        {
            Disc = DiscriminatorConfig.Parse(section.Section("disc")),
            Loss = GanLossConfig.Parse(section.Section("loss")),
        };
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder().Add("disc", Disc.ToYaml()).Add("loss", Loss.ToYaml());
}

/// <summary><c>gan.disc</c>: architecture, its own AdamW and LR schedule, and DiffAug settings.</summary>
public sealed record DiscriminatorConfig
{
    public DiscriminatorArchConfig Arch { get; init; } = new();
    public OptimizerConfig Optimizer { get; init; } = new();
    /// <summary>Null means a constant learning rate.</summary>
    public SchedulerConfig? Scheduler { get; init; }
    public DiffAugConfig Augment { get; init; } = new();

    internal static DiscriminatorConfig Parse(ConfigSection section)
    {
        var optimizer = section.OptionalSection("optimizer") is { } optimizerSection
            ? OptimizerConfig.Parse(optimizerSection, new OptimizerConfig())
            : new OptimizerConfig();
        var parsed = new DiscriminatorConfig
        {
            Arch = DiscriminatorArchConfig.Parse(section.Section("arch")),
            Optimizer = optimizer,
            Scheduler = section.OptionalSection("scheduler") is { } scheduler
                ? SchedulerConfig.Parse(scheduler, new SchedulerConfig { BaseLr = optimizer.Lr })
                : null,
            Augment = DiffAugConfig.Parse(section.Section("augment")),
        };
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("arch", Arch.ToYaml())
        .Add("optimizer", Optimizer.ToYaml())
        .Add("scheduler", Scheduler?.ToYaml())
        .Add("augment", Augment.ToYaml());
}

/// <summary><c>gan.disc.arch</c>: frozen DINO ViT backbone recipe and the spectral-normed conv heads.</summary>
public sealed record DiscriminatorArchConfig
{
    public static readonly IReadOnlyList<string> Recipes = ["S_8", "S_16", "B_16"];

    public string? DinoCkptPath { get; init; }
    public int Ks { get; init; } = 9;
    /// <summary>'bn' (local batch norm) or 'gn' (group norm).</summary>
    public string NormType { get; init; } = "bn";
    public bool UsingSpecNorm { get; init; } = true;
    public string Recipe { get; init; } = "S_8";
    public IReadOnlyList<int> KeyDepths { get; init; } = [2, 5, 8, 11];
    public double NormEps { get; init; } = 1e-6;
    /// <summary>Ours: <c>dino</c> (the reference's, needs dino_ckpt_path) or <c>resnet18-heads</c> (offline); default dino when dino_ckpt_path is set.</summary>
    public string Kind { get; init; } = ResNet18Heads;
    /// <summary>Ours: the square size images are resized to before the resnet18-heads backbone (a multiple of 32).</summary>
    public int InputSize { get; init; } = 224;

    public const string Dino = "dino";
    public const string ResNet18Heads = "resnet18-heads";

    internal static DiscriminatorArchConfig Parse(ConfigSection section)
    {
        var depths = section.OptionalLongList("key_depths") ?? [2, 5, 8, 11];
        section.Require(depths.Count > 0 && depths.All(depth => depth is >= 0 and < 12), "key_depths",
            "expected block indices in [0, 12) of the 12-block DINO backbone");
        var parsed = new DiscriminatorArchConfig
        {
            DinoCkptPath = section.OptionalString("dino_ckpt_path"),
            Ks = section.Int("ks", 9),
            NormType = section.Choice("norm_type", "bn", ["bn", "gn"]),
            UsingSpecNorm = section.Bool("using_spec_norm", true),
            Recipe = section.Choice("recipe", "S_8", Recipes.ToArray()),
            KeyDepths = depths.Select(depth => (int)depth).ToArray(),
            NormEps = section.Double("norm_eps", 1e-6),
            Kind = section.Choice("kind", section.OptionalString("dino_ckpt_path") is null ? ResNet18Heads : Dino, [Dino, ResNet18Heads]),
            InputSize = section.Int("input_size", 224),
        };
        section.Require(parsed.InputSize > 0 && parsed.InputSize % 32 == 0, "input_size", $"must be a positive multiple of 32, got {parsed.InputSize}");
        section.Require(parsed.Ks > 0 && parsed.Ks % 2 == 1, "ks", $"must be a positive odd kernel size, got {parsed.Ks}");
        section.Require(parsed.NormEps > 0, "norm_eps", "must be > 0");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("dino_ckpt_path", DinoCkptPath)
        .Add("ks", Ks)
        .Add("norm_type", NormType)
        .Add("using_spec_norm", UsingSpecNorm)
        .Add("recipe", Recipe)
        .Add("key_depths", KeyDepths)
        .Add("norm_eps", NormEps)
        .Add("kind", Kind)
        .Add("input_size", InputSize);
}

/// <summary><c>gan.disc.augment</c>: DiffAugment probability and cutout ratio.</summary>
public sealed record DiffAugConfig
{
    public double Prob { get; init; } = 1.0;
    public double Cutout { get; init; }

    internal static DiffAugConfig Parse(ConfigSection section)
    {
        var parsed = new DiffAugConfig { Prob = section.Double("prob", 1.0), Cutout = section.Double("cutout", 0.0) };
        section.Require(parsed.Prob is >= 0 and <= 1, "prob", $"must be in [0, 1], got {parsed.Prob}");
        section.Require(parsed.Cutout is >= 0 and <= 1, "cutout", $"must be in [0, 1], got {parsed.Cutout}");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder().Add("prob", Prob).Add("cutout", Cutout);
}

/// <summary>
/// <c>gan.loss</c>: loss kinds, weights and the epochs at which LPIPS, discriminator updates and the GAN loss start, and
/// which perceptual loss is used. <c>perceptual</c> is an extension of the reference (which always uses LPIPS-VGG16 and
/// downloads its weights): <c>lpips</c> needs <c>lpips_vgg16_path</c> (torchvision's vgg16 state dict) and
/// <c>lpips_lin_path</c> (the LPIPS <c>vgg.pth</c>); <c>resnet18</c> is the offline perceptual loss on the frozen ResNet18
/// featurizer. When <c>perceptual</c> is absent it is <c>lpips</c> if both weight paths are given and <c>resnet18</c>
/// otherwise, and the chosen value is what the configuration then holds (and writes back).
/// </summary>
public sealed record GanLossConfig
{
    public const string Lpips = "lpips";
    public const string ResNet18 = "resnet18";
    public static readonly IReadOnlyList<string> PerceptualLosses = [Lpips, ResNet18];

    public string DiscLoss { get; init; } = "hinge";
    public string GenLoss { get; init; } = "vanilla";
    public double DiscWeight { get; init; } = 0.75;
    public double PerceptualWeight { get; init; } = 1.0;
    /// <summary>Epoch from which the generator gets the GAN loss.</summary>
    public double DiscStart { get; init; } = 8;
    /// <summary>Epoch from which the discriminator is updated.</summary>
    public double DiscUpdStart { get; init; } = 6;
    /// <summary>Epoch from which LPIPS is used.</summary>
    public double LpipsStart { get; init; }
    public double MaxDWeight { get; init; } = 1e4;
    public int DiscUpdates { get; init; } = 1;
    /// <summary><c>lpips</c> or <c>resnet18</c>.</summary>
    public string Perceptual { get; init; } = ResNet18;
    /// <summary>torchvision's ImageNet vgg16 state dict, for <c>perceptual: lpips</c>.</summary>
    public string? LpipsVgg16Path { get; init; }
    /// <summary>The LPIPS linear-layer weights (<c>vgg.pth</c>), for <c>perceptual: lpips</c>.</summary>
    public string? LpipsLinPath { get; init; }

    internal static GanLossConfig Parse(ConfigSection section)
    {
        var vgg16Path = section.OptionalString("lpips_vgg16_path");
        var linPath = section.OptionalString("lpips_lin_path");
        var hasLpipsWeights = vgg16Path is not null && linPath is not null;
        var perceptual = section.Choice("perceptual", hasLpipsWeights ? Lpips : ResNet18, PerceptualLosses.ToArray());
        if (perceptual == Lpips)
        {
            section.Require(vgg16Path is not null, "lpips_vgg16_path",
                "perceptual: lpips needs the torchvision vgg16 ImageNet state dict here (nothing is downloaded); use perceptual: resnet18 to train offline");
            section.Require(linPath is not null, "lpips_lin_path",
                "perceptual: lpips needs the LPIPS linear-layer weights (vgg.pth) here (nothing is downloaded); use perceptual: resnet18 to train offline");
        }
        else
        {
            var stray = vgg16Path is not null ? "lpips_vgg16_path" : linPath is not null ? "lpips_lin_path" : null;
            if (stray is not null)
                throw section.Error(stray, section.OptionalString("perceptual") is null
                    ? "is only used by perceptual: lpips, which needs both lpips_vgg16_path and lpips_lin_path; with one of them missing perceptual defaults to resnet18"
                    : "is only used by perceptual: lpips, but perceptual is resnet18");
        }
        var parsed = new GanLossConfig
        {
            DiscLoss = section.Choice("disc_loss", "hinge", ["hinge", "vanilla"]),
            GenLoss = section.Choice("gen_loss", "vanilla", ["vanilla"]),
            DiscWeight = section.Double("disc_weight", 0.75),
            PerceptualWeight = section.Double("perceptual_weight", 1.0),
            DiscStart = section.Double("disc_start", 8),
            DiscUpdStart = section.Double("disc_upd_start", 6),
            LpipsStart = section.Double("lpips_start", 0),
            MaxDWeight = section.Double("max_d_weight", 1e4),
            DiscUpdates = section.Int("disc_updates", 1),
            Perceptual = perceptual,
            LpipsVgg16Path = vgg16Path,
            LpipsLinPath = linPath,
        };
        section.Require(parsed.DiscWeight >= 0, "disc_weight", "must be >= 0");
        section.Require(parsed.PerceptualWeight >= 0, "perceptual_weight", "must be >= 0");
        section.Require(parsed.DiscStart >= 0, "disc_start", "must be >= 0");
        section.Require(parsed.DiscUpdStart >= 0, "disc_upd_start", "must be >= 0");
        section.Require(parsed.LpipsStart >= 0, "lpips_start", "must be >= 0");
        section.Require(parsed.MaxDWeight > 0, "max_d_weight", "must be > 0");
        section.Require(parsed.DiscUpdates >= 1, "disc_updates", "must be >= 1");
        section.RejectUnknownKeys();
        return parsed;
    }

    internal YamlMapBuilder ToYaml() => new YamlMapBuilder()
        .Add("disc_loss", DiscLoss)
        .Add("gen_loss", GenLoss)
        .Add("disc_weight", DiscWeight)
        .Add("perceptual_weight", PerceptualWeight)
        .Add("disc_start", DiscStart)
        .Add("disc_upd_start", DiscUpdStart)
        .Add("lpips_start", LpipsStart)
        .Add("max_d_weight", MaxDWeight)
        .Add("disc_updates", DiscUpdates)
        .Add("perceptual", Perceptual)
        .AddIfSet("lpips_vgg16_path", LpipsVgg16Path)
        .AddIfSet("lpips_lin_path", LpipsLinPath);
}
