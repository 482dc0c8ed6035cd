using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Stage1.Discriminator;

namespace RAE.Models.Tests.Stage1.Discriminator;

public sealed class DiscriminatorsFactoryTests
{
    [Fact]
    public void DinoWithoutACheckpointIsAnErrorNamingTheKey()
    {
        var unset = Assert.Throws<ArgumentException>(() => Discriminators.Create(Discriminators.Dino, new DiscriminatorArchConfig()));
        Assert.Contains("gan.disc.arch.dino_ckpt_path", unset.Message);

        var missingPath = Path.Combine(Path.GetTempPath(), $"no-such-dino-{Guid.NewGuid():N}.pth");
        var missing = Assert.Throws<FileNotFoundException>(
            () => Discriminators.Create(Discriminators.Dino, new DiscriminatorArchConfig { DinoCkptPath = missingPath }));
        Assert.Contains("gan.disc.arch.dino_ckpt_path", missing.Message);
        Assert.Contains(missingPath, missing.Message);
        Assert.Contains("'stylegan'", Assert.Throws<ArgumentException>(() => Discriminators.Create("stylegan", new DiscriminatorArchConfig())).Message);
    }

    [Fact]
    public void ACheckpointFileLoadsWithKeyBiasZeroingAndTheArchConfigMapsToRecipeAndHeads()
    {
        var recipe = DinoDiscriminatorStructureTests.TinyRecipe;
        var checkpoint = DinoDiscriminatorStructureTests.RandomCheckpoint(recipe);
        var path = Path.Combine(Path.GetTempPath(), $"dino-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafeTensors.Save(path, checkpoint);
            // The tiny recipe is not a named one, so build through the same loader the factory uses.
            using var backbone = DinoVisionBackbone.Load(recipe, path);
            Assert.Equal(0f, backbone.state_dict()["blocks.2.attn.qkv.bias"].narrow(0, recipe.EmbedDim, recipe.EmbedDim).abs().max().item<float>());

            var arch = new DiscriminatorArchConfig { Recipe = "S_16", KeyDepths = [3, 7], Ks = 5, NormEps = 1e-5 };
            var s16 = Discriminators.Recipe(arch);
            Assert.Equal(16, s16.PatchSize);
            Assert.Equal(new[] { 3, 7 }, s16.KeyDepths);
            Assert.Equal(3, s16.HeadCount);
            Assert.Equal(1e-5, s16.NormEps);
            Assert.Equal(new DiscriminatorHeadOptions(5, HeadNorm.BatchNormLocal, true), Discriminators.HeadOptions(arch));
        }
        finally
        {
            File.Delete(path);
            foreach (var tensor in checkpoint.Values) tensor.Dispose();
        }
    }
}
