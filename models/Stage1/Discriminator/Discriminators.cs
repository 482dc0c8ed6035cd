using RAE.Configuration;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// Builds the Stage 1 discriminator from <c>gan.disc.arch</c>: <c>dino</c> is the reference's (it needs the DINO
/// checkpoint named by <c>dino_ckpt_path</c>); <c>resnet18-heads</c> is the offline stand-in on the ResNet18 weights
/// shipped with the build, with the same head settings (ks, norm_type, using_spec_norm).
/// </summary>
public static class Discriminators
{
    public const string Dino = "dino";
    public const string ResNet18Heads = ResNetHeadsDiscriminator.ConfigName;

    public static IDiscriminator Create(string kind, DiscriminatorArchConfig arch, Generator? generator = null) => kind switch
    {
        Dino => CreateDino(arch, generator),
        ResNet18Heads => ResNetHeadsDiscriminator.Create(new ResNetHeadsDiscriminatorOptions(Heads: HeadOptions(arch)), generator),
        _ => throw new ArgumentException($"discriminator '{kind}' is unknown ({Dino}, {ResNet18Heads})", nameof(kind)),
    };

    public static DiscriminatorHeadOptions HeadOptions(DiscriminatorArchConfig arch) =>
        new(arch.Ks, DiscriminatorHeadOptions.ParseNorm(arch.NormType), arch.UsingSpecNorm);

    /// <summary>The named recipe with the config's key_depths and norm_eps.</summary>
    public static DinoBackboneRecipe Recipe(DiscriminatorArchConfig arch) =>
        (DinoBackboneRecipe.Named(arch.Recipe) with { KeyDepths = arch.KeyDepths.ToArray(), NormEps = arch.NormEps }).Validated("gan.disc.arch");

    private static DinoDiscriminator CreateDino(DiscriminatorArchConfig arch, Generator? generator)
    {
        var path = arch.DinoCkptPath;
        if (string.IsNullOrWhiteSpace(path))
            throw new ArgumentException(
                $"gan.disc.arch.dino_ckpt_path is not set: the DINO discriminator needs the DINO {arch.Recipe} checkpoint (or choose '{ResNet18Heads}')");
        if (!File.Exists(path))
            throw new FileNotFoundException($"gan.disc.arch.dino_ckpt_path: the DINO checkpoint {path} does not exist", path);
        var backbone = DinoVisionBackbone.Load(Recipe(arch), path);
        try
        {
            return new DinoDiscriminator(backbone, HeadOptions(arch), generator);
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
    }
}
