using RAE.Models.Stage1.Losses;
using RAE.Models.Verification;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1.Losses;

public sealed class LpipsTests
{
    [Fact]
    public void LpipsVggCaseMatchesEveryReferenceOutputAndTrace()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("lpips_vgg"));
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
