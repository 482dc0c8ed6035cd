using RAE.Models.IO;
using RAE.Models.Stage2;
using TorchSharp;
using static RAE.Models.Tests.CheckpointTestFiles;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class CheckpointLoaderTests
{
    [Theory]
    [InlineData("stage2_model.pt", "ddt_tiny")]
    [InlineData("model.pt", "decoder_tiny")]
    public void RawStateDictLoadsBitExactly(string file, string fixtureCase)
    {
        var loaded = CheckpointLoader.LoadStateDict(PtFormats(file));
        var expected = SafeTensors.Load(Path.Combine(Fixtures.Case(fixtureCase), "weights.safetensors"));
        try
        {
            AssertSameStateDict(expected, loaded);
        }
        finally
        {
            DisposeAll(expected.Values.Concat(loaded.Values));
        }
    }

    [Fact]
    public void TrainingCheckpointYieldsTheEmaWeightsNotTheZeroModel()
    {
        var loaded = CheckpointLoader.LoadStateDict(PtFormats("stage2_ckpt_with_ema.pt"));
        var expected = SafeTensors.Load(Path.Combine(Fixtures.Case("ddt_tiny"), "weights.safetensors"));
        try
        {
            AssertSameStateDict(expected, loaded);
            Assert.True(loaded["blocks.0.attn.proj.bias"].abs().sum().item<float>() > 0);
        }
        finally
        {
            DisposeAll(expected.Values.Concat(loaded.Values));
        }
    }

    [Fact]
    public void TrainingCheckpointLoadsStrictlyIntoDiTwDDTHeadAndReproducesTheReferenceForward()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var model = new DiTwDDTHead(new DiTwDDTHeadOptions
        {
            InputSize = 4, InChannels = 8, HiddenSize = new(64, 96), Depth = new(2, 1), NumHeads = new(4, 4), NumClasses = 10,
        });
        CheckpointLoader.LoadInto(model, PtFormats("stage2_ckpt_with_ema.pt"));
        model.eval();
        var io = SafeTensors.Load(Path.Combine(Fixtures.Case("ddt_tiny"), "io.safetensors"));
        var output = model.forward(io["x"], io["t"], io["y"]);
        var relative = (output - io["forward"]).abs().max().item<float>() / io["forward"].abs().max().item<float>();
        Assert.True(relative < 1e-5, $"relative error {relative}");

        var wrongModel = nn.Sequential(("0", nn.Linear(2, 2)));
        var mismatch = Assert.ThrowsAny<InvalidDataException>(() => CheckpointLoader.LoadInto(wrongModel, PtFormats("stage2_model.pt")));
        Assert.Contains("stage2_model.pt", mismatch.Message);
    }

    [Fact]
    public void ModelEntryCanBeChosenExplicitly()
    {
        var loaded = CheckpointLoader.LoadStateDict(PtFormats("stage2_ckpt_with_ema.pt"), new CheckpointLoadOptions { Entry = CheckpointEntry.Model });
        try
        {
            Assert.Contains("blocks.0.attn.proj.bias", loaded.Keys);
            Assert.All(loaded.Values, tensor => Assert.Equal(0, tensor.count_nonzero().item<long>()));
        }
        finally
        {
            DisposeAll(loaded.Values);
        }
    }

    [Fact]
    public void CheckpointWithOnlyAModelEntryIsRefusedUnlessChosen()
    {
        var path = Synthetic("model_only.pt");
        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.LoadStateDict(path));
        Assert.Contains("'model' entry but no 'ema'", error.Message);
        Assert.Contains(nameof(CheckpointEntry.Model), error.Message);
        Assert.Contains(path, error.Message);

        var loaded = CheckpointLoader.LoadStateDict(path, new CheckpointLoadOptions { Entry = CheckpointEntry.Model });
        using var weight = loaded["layer.weight"];
        Assert.Equal(new float[] { 1, 2, 3, 4 }, weight.data<float>().ToArray());
        Assert.Equal(new long[] { 2, 2 }, weight.shape);
    }

    [Fact]
    public void MissingRequestedEntryAndNonTensorEntriesGiveClearErrors()
    {
        var path = PtFormats("stage2_model.pt");
        var noEma = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.LoadStateDict(path, new CheckpointLoadOptions { Entry = CheckpointEntry.Ema }));
        Assert.Contains("no 'ema' entry", noEma.Message);
        var rootOfTrainingCheckpoint = Assert.Throws<CheckpointFormatException>(() =>
            CheckpointLoader.LoadStateDict(PtFormats("stage2_ckpt_with_ema.pt"), new CheckpointLoadOptions { Entry = CheckpointEntry.Root }));
        Assert.Contains("state dict entry 'ema'", rootOfTrainingCheckpoint.Message);
    }

    [Fact]
    public void UnknownGlobalsBesideTheWeightsAreToleratedOnlyWhenAllowed()
    {
        var path = Synthetic("unknown_global.pt");
        Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.LoadStateDict(path));
        var loaded = CheckpointLoader.LoadStateDict(path, new CheckpointLoadOptions { AllowUnknownGlobals = true });
        using var bias = loaded["layer.bias"];
        Assert.Equal(0.5f, bias.item<float>());
    }

    [Fact]
    public void WrapperPrefixesAreStrippedFromPickleKeys()
    {
        var loaded = CheckpointLoader.LoadStateDict(Synthetic("prefixed_state_dict.pt"));
        try
        {
            Assert.Equal(new[] { "layer.weight", "layer.bias" }, loaded.Keys);
        }
        finally
        {
            DisposeAll(loaded.Values);
        }
    }

    [Theory]
    [InlineData("module.blocks.0.w", "blocks.0.w")]
    [InlineData("_orig_mod.module._orig_mod.x", "x")]
    [InlineData("blocks.module.x", "blocks.module.x")]
    [InlineData("modulex", "modulex")]
    public void StripWrapperPrefixesRemovesOnlyLeadingWrappers(string key, string expected) =>
        Assert.Equal(expected, CheckpointLoader.StripWrapperPrefixes(key));

    [Fact]
    public void SafetensorsStateDictLoadsWithPrefixesStrippedAndCollisionsRefused()
    {
        var path = TemporaryPath(".safetensors");
        try
        {
            using (var scope = NewDisposeScope())
                SafeTensors.Save(path, new Dictionary<string, Tensor> { ["module.a"] = ones(2), ["b"] = zeros(1) });
            var loaded = CheckpointLoader.LoadStateDict(path);
            Assert.Equal(new[] { "a", "b" }, loaded.Keys);
            DisposeAll(loaded.Values);
            Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.LoadStateDict(path, new CheckpointLoadOptions { Entry = CheckpointEntry.Ema }));

            using (var scope = NewDisposeScope())
                SafeTensors.Save(path, new Dictionary<string, Tensor> { ["module.a"] = ones(2), ["a"] = zeros(1) });
            var collision = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.LoadStateDict(path));
            Assert.Contains("keys 'module.a' and 'a' both become 'a'", collision.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void StatAndBatchedStatGiveEqualStatisticsShapedLikeTheLatent()
    {
        using var stat = CheckpointLoader.LoadLatentStats(PtFormats("stat.pt"), expectedLatentShape: [16, 4, 4]);
        using var batched = CheckpointLoader.LoadLatentStats(PtFormats("stat_batched.pt"), expectedLatentShape: [16, 4, 4]);
        var io = SafeTensors.Load(Path.Combine(Fixtures.Case("decoder_tiny"), "io.safetensors"));
        try
        {
            Assert.True(stat.HasMean && stat.HasVar && batched.HasMean && batched.HasVar);
            AssertBitExact(io["latent_mean"], stat.Mean, "mean");
            AssertBitExact(io["latent_var"], stat.Var, "var");
            AssertBitExact(stat.Mean, batched.Mean, "batched mean");
            AssertBitExact(stat.Var, batched.Var, "batched var");
        }
        finally
        {
            DisposeAll(io.Values);
        }
    }

    [Fact]
    public void LatentStatsShapeMismatchIsReported()
    {
        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.LoadLatentStats(PtFormats("stat.pt"), expectedLatentShape: [768, 16, 16]));
        Assert.Contains("[16, 4, 4]", error.Message);
        Assert.Contains("[768, 16, 16]", error.Message);
    }

    [Fact]
    public void AbsentMeanReadsAsZerosAbsentVarAsOnesAndNeitherIsRefused()
    {
        var path = TemporaryPath(".safetensors");
        try
        {
            using (var scope = NewDisposeScope())
                SafeTensors.Save(path, new Dictionary<string, Tensor> { ["var"] = full(new long[] { 1, 2, 3, 3 }, 4.0f) });
            using (var onlyVar = CheckpointLoader.LoadLatentStats(path))
            {
                Assert.False(onlyVar.HasMean);
                Assert.True(onlyVar.HasVar);
                Assert.Equal(new long[] { 2, 3, 3 }, onlyVar.Mean.shape);
                Assert.Equal(0, onlyVar.Mean.count_nonzero().item<long>());
                Assert.Equal(4.0f, onlyVar.Var.mean().item<float>());
            }

            using (var scope = NewDisposeScope())
                SafeTensors.Save(path, new Dictionary<string, Tensor> { ["mean"] = full(new long[] { 2, 3, 3 }, 0.5, float64) });
            using (var onlyMean = CheckpointLoader.LoadLatentStats(path))
            {
                Assert.Equal(ScalarType.Float32, onlyMean.Mean.dtype);
                Assert.Equal(1.0f, onlyMean.Var.min().item<float>());
                Assert.Equal(1.0f, onlyMean.Var.max().item<float>());
                Assert.False(onlyMean.HasVar);
            }

            var neither = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.LoadLatentStats(PtFormats("model.pt")));
            Assert.Contains("no 'mean' or 'var'", neither.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SavedModuleStateDictReloadsBitExactlyWithModuleKeyNames()
    {
        var directory = Directory.CreateTempSubdirectory("rae-save-").FullName;
        var path = Path.Combine(directory, "weights.safetensors");
        try
        {
            using var module = nn.Sequential(("0", nn.Linear(3, 4)), ("1", nn.LayerNorm(4)));
            CheckpointLoader.SaveStateDict(path, module);
            Assert.Equal(new[] { "weights.safetensors" }, Directory.GetFiles(directory).Select(Path.GetFileName));
            var loaded = CheckpointLoader.LoadStateDict(path);
            var expected = module.state_dict();
            try
            {
                Assert.Equal(new[] { "0.bias", "0.weight", "1.bias", "1.weight" }, loaded.Keys.Order(StringComparer.Ordinal));
                AssertSameStateDict(expected, loaded);
            }
            finally
            {
                DisposeAll(loaded.Values);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void SavingANonContiguousTensorStoresItsValues()
    {
        var path = TemporaryPath(".safetensors");
        try
        {
            using var grid = arange(6, dtype: float32).view(2, 3);
            using var transposed = grid.t();
            CheckpointLoader.SaveStateDict(path, [new("t", transposed)]);
            var loaded = CheckpointLoader.LoadStateDict(path);
            using var t = loaded["t"];
            AssertBitExact(transposed, t, "t");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void DefaultVerifierChecksThePtFormatsCaseExactly()
    {
        var results = RAE.Models.Verification.ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("pt_formats"));
        Assert.Contains(results, r => r.Name == "stage2_ckpt_with_ema.pt:blocks.0.attn.proj.bias");
        Assert.Contains(results, r => r.Name == "stat_batched.pt:var");
        Assert.All(results, r => Assert.True(r.MaxAbsoluteError == 0, $"{r.Name}: {r.MaxAbsoluteError}"));
    }

    private static void AssertSameStateDict(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, tensor) in expected) AssertBitExact(tensor, actual[key], key);
    }
}
