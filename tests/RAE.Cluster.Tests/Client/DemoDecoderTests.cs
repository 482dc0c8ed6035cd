using RAE.Client.Commands;
using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Stage1;

namespace RAE.Cluster.Tests.Client;

/// <summary>The Stage 1 decoder `rae demo` prepares from configs/demo/stage2-demo.yaml (no silo involved).</summary>
public sealed class DemoDecoderTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rae-demo-decoder-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly string _configPath = Cli.RepositoryFile(DemoCommand.DefaultConfig);

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void WithoutDecoderWeightsTheDemoWritesTheSameSeededDecoderEveryTimeAndPointsTheConfigAtIt()
    {
        var config = RaeConfig.Load(_configPath);
        Assert.Null(config.Stage1!.Params.PretrainedDecoderPath);

        var (first, decoder) = DemoDecoder.Prepare(config, _configPath, Path.Combine(_folder, "a"));
        var (_, again) = DemoDecoder.Prepare(config, _configPath, Path.Combine(_folder, "b"));

        Assert.NotNull(decoder);
        Assert.True(decoder.Generated);
        Assert.Equal(Path.Combine(_folder, "a", "stage1", "decoder.safetensors"), decoder.WeightsPath);
        Assert.Equal(File.ReadAllBytes(decoder.WeightsPath), File.ReadAllBytes(again!.WeightsPath));
        Assert.Equal(decoder.WeightsPath, first.Stage1!.Params.PretrainedDecoderPath);
        // The folder form of decoder_config_path (as in the reference configs) becomes its config.json, absolute.
        Assert.Equal(Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(_configPath)))!, "configs", "decoder", "demo", "config.json"),
            first.Stage1.Params.DecoderConfigPath);
        // hidden_size := the 8 latent channels, 4x4 tokens of 16 px.
        Assert.Equal(new DecoderConfig(8, 64, 2, 4, 128, 16, 64), decoder.Architecture);
        Assert.Equal(64, decoder.ImageSize);

        // The weights load strictly into that architecture, and they are not all alike (a real seeded init).
        using var model = new GeneralDecoder(decoder.Architecture);
        StrictWeightLoader.Load(model, decoder.WeightsPath);
        var weights = SafeTensors.Load(decoder.WeightsPath);
        try
        {
            Assert.Contains("decoder_pred.weight", weights.Keys);
            using var spread = weights["decoder_pred.weight"].std();
            Assert.True(spread.item<float>() > 0.01f);
        }
        finally
        {
            foreach (var tensor in weights.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void DecoderWeightsTheUserNamesAreUsedAndNothingIsWritten()
    {
        Directory.CreateDirectory(_folder);
        var own = Path.Combine(_folder, "own.safetensors");
        DemoDecoder.WriteSeededWeights(new DecoderConfig(8, 64, 2, 4, 128, 16, 64), own);
        var config = RaeConfig.Load(_configPath, [$"stage_1.params.pretrained_decoder_path={own}"]);

        var (prepared, decoder) = DemoDecoder.Prepare(config, _configPath, Path.Combine(_folder, "data"));

        Assert.False(decoder!.Generated);
        Assert.Equal(own, decoder.WeightsPath);
        Assert.Equal(own, prepared.Stage1!.Params.PretrainedDecoderPath);
        Assert.False(Directory.Exists(Path.Combine(_folder, "data")), "the demo must not write a decoder when the config names one");
    }

    [Fact]
    public void AMissingDecoderFileOrConfigIsAConfigErrorNamingTheKey()
    {
        var missingWeights = RaeConfig.Load(_configPath, [$"stage_1.params.pretrained_decoder_path={Path.Combine(_folder, "absent.safetensors")}"]);
        var error = Assert.Throws<ConfigException>(() => DemoDecoder.Prepare(missingWeights, _configPath, _folder));
        Assert.Equal("stage_1.params.pretrained_decoder_path", error.KeyPath);
        Assert.Contains("absent.safetensors", error.Message);

        var noArchitecture = RaeConfig.Load(_configPath, ["stage_1.params.decoder_config_path=null"]);
        error = Assert.Throws<ConfigException>(() => DemoDecoder.Prepare(noArchitecture, _configPath, _folder));
        Assert.Equal("stage_1.params.decoder_config_path", error.KeyPath);

        var wrongArchitecture = RaeConfig.Load(_configPath, ["stage_1.params.decoder_config_path=configs/decoder/no-such"]);
        error = Assert.Throws<ConfigException>(() => DemoDecoder.Prepare(wrongArchitecture, _configPath, _folder));
        Assert.Contains("configs/decoder/no-such", error.Message);
    }

    [Fact]
    public void AConfigWithoutStage1KeepsLatents()
    {
        var config = RaeConfig.Load(_configPath, ["stage_1="]);
        Assert.Null(config.Stage1);
        var (prepared, decoder) = DemoDecoder.Prepare(config, _configPath, _folder);
        Assert.Null(decoder);
        Assert.Same(config, prepared);
        Assert.False(Directory.Exists(_folder));
    }
}
