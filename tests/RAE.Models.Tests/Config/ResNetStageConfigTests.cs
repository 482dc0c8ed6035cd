using RAE.Configuration;

namespace RAE.Models.Tests.Config;

public sealed class ResNetStageConfigTests
{
    private static string ResNet18Yaml(int inputSize, string? stage) => $"""
        stage_1:
          target: stage1.RAE
          params:
            encoder_cls: ResNet18
            encoder_input_size: {inputSize}
            encoder_params: {(stage is null ? "{normalize: true}" : $"{{normalize: true, stage: {stage}}}")}
        """;

    private static RaeParams Parse(int inputSize, string? stage) => RaeConfig.Parse(ResNet18Yaml(inputSize, stage), "resnet.yaml").Stage1!.Params;

    [Theory]
    [InlineData("layer1", 1, 4, 64, 16)]
    [InlineData("layer2", 2, 8, 128, 8)]
    [InlineData("Layer3", 3, 16, 256, 4)]
    [InlineData("3", 3, 16, 256, 4)]
    [InlineData("4", 4, 32, 512, 2)]
    public void StageSetsTheStrideChannelsAndTokenGrid(string stage, int expectedStage, int stride, int channels, int grid)
    {
        var parsed = Parse(64, stage);

        Assert.Equal((expectedStage, stride, channels, grid),
            (parsed.EncoderParams.ResNetStage, parsed.EncoderPatchSize, parsed.EncoderParams.ResNetStageChannels, parsed.TokenGridSize));
    }

    [Fact]
    public void StageDefaultsToLayer4AndIsOnlyWrittenWhenNotTheDefault()
    {
        var defaulted = RaeConfig.Parse(ResNet18Yaml(64, null), "resnet.yaml");
        var layer2 = RaeConfig.Parse(ResNet18Yaml(32, "layer2"), "resnet.yaml");

        Assert.Equal((4, 2), (defaulted.Stage1!.Params.EncoderParams.ResNetStage, defaulted.Stage1.Params.TokenGridSize));
        Assert.DoesNotContain("stage:", defaulted.ToYaml());
        var reread = RaeConfig.Parse(layer2.ToYaml(), "written.yaml").Stage1!.Params;
        Assert.Equal((2, 4), (reread.EncoderParams.ResNetStage, reread.TokenGridSize));
    }

    [Theory]
    [InlineData("layer5")]
    [InlineData("0")]
    [InlineData("conv1")]
    public void UnknownStageIsAnErrorNamingTheKey(string stage)
    {
        var error = Assert.Throws<ConfigException>(() => Parse(64, stage));

        Assert.Equal("stage_1.params.encoder_params.stage", error.KeyPath);
        Assert.Contains($"'{stage}' is not a ResNet18 stage", error.Message);
    }

    [Fact]
    public void InputSizeMustBeAMultipleOfTheChosenStagesStride()
    {
        Assert.Equal(3, Parse(24, "layer2").TokenGridSize);
        var error = Assert.Throws<ConfigException>(() => Parse(24, "layer3"));

        Assert.Equal("stage_1.params.encoder_input_size", error.KeyPath);
        Assert.Contains("patch size 16", error.Message);
    }

    [Fact]
    public void StageIsRejectedForViTEncoders()
    {
        var yaml = ResNet18Yaml(224, "layer3").Replace("encoder_cls: ResNet18", "encoder_cls: MAEwNorm").Replace("normalize: true, ", "");

        Assert.Equal("stage_1.params.encoder_params.stage", Assert.Throws<ConfigException>(() => RaeConfig.Parse(yaml, "mae.yaml")).KeyPath);
    }
}
