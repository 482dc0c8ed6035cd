using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class SafeTensorsTests
{
    [Fact]
    public void LoadsFixtureWeightsWithReferenceKeysAndShapes()
    {
        var tensors = SafeTensors.Load(Path.Combine(Fixtures.Case("ddt_tiny"), "weights.safetensors"));
        try
        {
            Assert.Equal(new long[] { 1, 16, 64 }, tensors["pos_embed"].shape);
            Assert.Equal(new long[] { 96, 8, 1, 1 }, tensors["x_embedder.proj.weight"].shape);
            Assert.Equal(ScalarType.Float32, tensors["t_embedder.W"].dtype);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void RoundTripsEveryDtypeBitExactly()
    {
        using var scope = NewDisposeScope();
        var original = new Dictionary<string, Tensor>
        {
            ["a.float"] = randn(3, 4),
            ["b.half"] = randn(5).to(float16),
            ["c.bf16"] = randn(2, 2).to(bfloat16),
            ["d.long"] = arange(7, dtype: int64),
            ["e.byte"] = arange(9, dtype: uint8),
            ["f.bool"] = tensor(new[] { true, false, true }),
        };
        var path = Path.Combine(Path.GetTempPath(), $"rae-st-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafeTensors.Save(path, original, new Dictionary<string, string> { ["format"] = "pt" });
            var loaded = SafeTensors.Load(path);
            Assert.Equal(original.Keys, loaded.Keys);
            foreach (var (name, tensor) in original)
            {
                Assert.Equal(tensor.dtype, loaded[name].dtype);
                Assert.True(tensor.equal(loaded[name]).all().item<bool>(), name);
                loaded[name].Dispose();
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TruncatedFileGivesAClearError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rae-st-{Guid.NewGuid():N}.safetensors");
        try
        {
            File.WriteAllBytes(path, new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2 });
            var error = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(path));
            Assert.Contains("header length", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
