using RAE.Configuration;
using RAE.Models.Stage1.Losses;

namespace RAE.Models.Tests.Config;

public sealed class PerceptualConfigTests
{
    private static GanLossConfig ParseLoss(string lossLines) =>
        RaeConfig.Parse($"stage_2:\n  target: DiTwDDTHead\ngan:\n  loss:\n{lossLines}", "perceptual.yaml").Gan!.Loss;

    [Fact]
    public void WithoutLpipsWeightsTheReferenceLossSectionChoosesResNet18AndWritesTheChoiceBack()
    {
        var loss = ParseLoss("    perceptual_weight: 1.0\n    lpips_start: 0\n");
        Assert.Equal(GanLossConfig.ResNet18, loss.Perceptual);
        Assert.Null(loss.LpipsVgg16Path);
        var written = RaeConfig.Parse($"stage_2:\n  target: DiTwDDTHead\ngan:\n  loss:\n    perceptual_weight: 1.0\n", "p.yaml").ToYaml();
        Assert.Matches("perceptual: '?resnet18'?", written);
    }

    [Fact]
    public void BothLpipsWeightPathsChooseLpipsUnlessResNet18IsNamed()
    {
        var loss = ParseLoss("    lpips_vgg16_path: /w/vgg16.pth\n    lpips_lin_path: /w/vgg.pth\n");
        Assert.Equal((GanLossConfig.Lpips, "/w/vgg16.pth", "/w/vgg.pth"), (loss.Perceptual, loss.LpipsVgg16Path, loss.LpipsLinPath));
        var explicitLpips = ParseLoss("    perceptual: lpips\n    lpips_vgg16_path: a.pth\n    lpips_lin_path: b.pth\n");
        Assert.Equal(GanLossConfig.Lpips, explicitLpips.Perceptual);
    }

    [Theory]
    [InlineData("    perceptual: lpips\n", "gan.loss.lpips_vgg16_path")]
    [InlineData("    perceptual: lpips\n    lpips_vgg16_path: a.pth\n", "gan.loss.lpips_lin_path")]
    [InlineData("    perceptual: resnet18\n    lpips_lin_path: b.pth\n", "gan.loss.lpips_lin_path")]
    [InlineData("    lpips_vgg16_path: a.pth\n", "gan.loss.lpips_vgg16_path")]
    [InlineData("    perceptual: vgg\n", "gan.loss.perceptual")]
    public void AnInconsistentPerceptualChoiceNamesTheKey(string lossLines, string key)
    {
        var error = Assert.Throws<ConfigException>(() => ParseLoss(lossLines));
        Assert.Equal(key, error.KeyPath);
    }

    [Fact]
    public void TheFactoryRefusesLpipsWithoutWeightsAndBuildsResNet18Offline()
    {
        var error = Assert.Throws<ArgumentException>(() => PerceptualLosses.Create(new GanLossConfig { Perceptual = GanLossConfig.Lpips, LpipsLinPath = "b.pth" }));
        Assert.Contains("gan.loss.lpips_vgg16_path", error.Message);
        Assert.DoesNotContain("lpips_lin_path is", error.Message);
        var missingFile = Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.pth");
        var notFound = Assert.Throws<FileNotFoundException>(() => PerceptualLosses.Create(
            new GanLossConfig { Perceptual = GanLossConfig.Lpips, LpipsVgg16Path = missingFile, LpipsLinPath = missingFile }));
        Assert.Contains("gan.loss.lpips_vgg16_path", notFound.Message);
        using var offline = PerceptualLosses.Create(new GanLossConfig());
        Assert.IsType<ResNet18PerceptualLoss>(offline);
        Assert.Equal(GanLossConfig.ResNet18, offline.Name);
    }

    [Fact]
    public void LpipsServesTheTrainingStepThroughTheSameInterface()
    {
        using var lpips = new Lpips();
        IPerceptualLoss perceptual = lpips;
        Assert.Equal(GanLossConfig.Lpips, perceptual.Name);
        using var generator = new TorchSharp.torch.Generator(3);
        using var x = TorchSharp.torch.rand([1, 3, 32, 32], generator: generator);
        using var y = TorchSharp.torch.rand([1, 3, 32, 32], generator: generator);
        using var direct = lpips.PerSample(x, y);
        using var throughInterface = perceptual.PerSample(x, y);
        using var mean = perceptual.Loss(x, y);
        Assert.True(direct.allclose(throughInterface, rtol: 0, atol: 0));
        using var directMean = direct.mean();
        Assert.Equal(directMean.item<float>(), mean.item<float>());
    }
}
