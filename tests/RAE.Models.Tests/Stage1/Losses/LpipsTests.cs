using RAE.Models.Stage1.Losses;
using RAE.Models.Verification;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1.Losses;

public sealed class LpipsTests
{
    [Fact]
    public void LpipsVggCaseMatchesEveryReferenceOutputAndTrace()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("lpips_vgg"), Fixtures.ConvolutionStackTolerance);
        var expected = new List<string> { "per_sample", "mean", "sum", "trace.scaled.in0", "trace.scaled.in1", "trace.net.in0.relu5_3", "trace.net.in1.relu5_3" };
        for (var k = 0; k < 5; k++) expected.AddRange([$"trace.diff.{k}", $"trace.lin.{k}", $"trace.contrib.{k}"]);
        Stage1LossAssertions.AssertAllPass(results, expected.ToArray());
        Assert.Equal(expected.Count, results.Count);
    }

    [Fact]
    public void StateDictHasTheReferenceKeys()
    {
        using var lpips = new Lpips();
        var keys = lpips.state_dict().Keys.ToHashSet();
        Assert.Equal(33, keys.Count);
        foreach (var key in new[] { "scaling_layer.shift", "scaling_layer.scale", "net.slice1.0.weight", "net.slice1.2.bias", "net.slice2.1.weight",
                     "net.slice3.5.weight", "net.slice5.5.bias", "lin0.model.1.weight", "lin4.model.1.weight" })
            Assert.Contains(key, keys);
        Assert.All(lpips.parameters(), p => Assert.False(p.requires_grad));
    }

    [Theory]
    [InlineData("features.0.weight", "net.slice1.0.weight")]
    [InlineData("features.5.bias", "net.slice2.1.bias")]
    [InlineData("features.14.weight", "net.slice3.5.weight")]
    [InlineData("features.17.weight", "net.slice4.1.weight")]
    [InlineData("features.28.bias", "net.slice5.5.bias")]
    public void TorchvisionKeysMapToTheSliceKeys(string torchvision, string reference) =>
        Assert.Equal(reference, Lpips.FromTorchvisionKey(torchvision, "test"));

    [Fact]
    public void PretrainedWeightsLoadFromTorchvisionAndLpipsKeys()
    {
        using var source = new Lpips();
        var directory = Directory.CreateTempSubdirectory("rae-lpips-").FullName;
        try
        {
            var sourceState = source.state_dict();
            var torchvision = new Dictionary<string, Tensor>();
            foreach (var (key, value) in sourceState.Where(pair => pair.Key.StartsWith("net.", StringComparison.Ordinal)))
            {
                var parts = key.Split('.');   // net.slice{k}.{i}.{weight|bias}
                var slice = int.Parse(parts[1]["slice".Length..]) - 1;
                torchvision[$"features.{Lpips.SliceRanges[slice].Start + int.Parse(parts[2])}.{parts[3]}"] = value;
            }
            using var classifier = zeros(4, 4);
            torchvision["classifier.0.weight"] = classifier;
            var vggPath = Path.Combine(directory, "vgg16.safetensors");
            var linPath = Path.Combine(directory, "vgg_lin.safetensors");
            IO.SafeTensors.Save(vggPath, torchvision);
            IO.SafeTensors.Save(linPath, sourceState.Where(pair => pair.Key.StartsWith("lin", StringComparison.Ordinal)));

            using var loaded = new Lpips();
            loaded.LoadPretrained(vggPath, linPath);
            var loadedState = loaded.state_dict();
            Assert.Equal(26, torchvision.Count - 1);
            foreach (var (key, value) in sourceState)
                Assert.True(loadedState[key].allclose(value, rtol: 0, atol: 0), $"{key} differs after loading");

            IO.SafeTensors.Save(linPath, sourceState.Where(pair => pair.Key.StartsWith("lin0", StringComparison.Ordinal)));
            var error = Assert.Throws<InvalidDataException>(() => loaded.LoadPretrained(vggPath, linPath));
            Assert.Contains("lin1.model.1.weight", error.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void AKeyBeyondRelu5_3IsRejected()
    {
        var error = Assert.Throws<InvalidDataException>(() => Lpips.FromTorchvisionKey("features.30.weight", "vgg16.pth"));
        Assert.Contains("features.30.weight", error.Message);
    }

    [Fact]
    public void IdenticalImagesHaveZeroDistanceAndGradientsReachTheInput()
    {
        using var lpips = new Lpips();
        using var a = rand(1, 3, 32, 32) * 2 - 1;
        using var same = lpips.PerSample(a, a);
        Assert.Equal(0f, same.abs().max().item<float>());
        using var b = (rand(1, 3, 32, 32) * 2 - 1).requires_grad_(true);
        using var loss = lpips.Loss(a, b);
        loss.backward();
        Assert.True(b.grad!.abs().sum().item<float>() > 0);
    }
}
