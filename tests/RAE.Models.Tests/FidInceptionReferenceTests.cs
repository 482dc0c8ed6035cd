using RAE.Models.Metrics;
using RAE.Models.Verification;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class FidInceptionReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void FidInceptionCaseMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("fid_inception"), Fixtures.ConvolutionStackTolerance);
        foreach (var result in results) output.WriteLine($"{result.Name}: abs {result.MaxAbsoluteError:g3}, relative {result.MaxRelativeError:g3} (tolerance {result.Tolerance:g3})");
        var expected = new List<string>
        {
            "resized.x37x53", "resized.x512.tl", "resized.x512.br",
            "features.x64.2048", "features.x299.2048", "features.x256.2048", "features.x512.2048",
            "features.x64.64", "features.x64.192", "features.x64.768",
            "e2e.psnr", "e2e.ssim", "e2e.rfid_path.features_ref", "e2e.rfid_path.features_rec", "e2e.rfid_path.mu_ref_f32",
            "e2e.gfid_path.mu_gen", "e2e.gfid_path.sigma_ref_diag", "e2e.rfid", "e2e.gfid", "e2e.rfid_eigvals_0_4_0",
        };
        expected.AddRange(FidInceptionV3.TracedModules.SelectMany(m => new[] { $"trace.x64.{m}.mean", $"trace.x64.{m}.tl", $"trace.x64.{m}.br" }));
        TransportReferenceAssertions.AssertAllPass(results, expected.ToArray());
    }

    [Fact]
    public void ResizeTo299OfA299ImageIsTheIdentity()
    {
        using var scope = NewDisposeScope();
        var images = randint(0, 256, [1, 3, 299, 299], generator: new Generator(4)).to(ScalarType.Float32);
        Assert.Equal(0L, TensorFlowResize.Bilinear(images, 299, 299).ne(images).sum().item<long>());
    }

    [Fact]
    public void FloatInputAndWrongWeightsAreClearErrors()
    {
        using var model = new FidInceptionV3();
        using var scope = NewDisposeScope();
        Assert.Contains("uint8", Assert.Throws<ArgumentException>(() => model.Extract(zeros(1, 3, 32, 32), withTaps: false)).Message);
        var stateDict = model.state_dict().ToDictionary(p => p.Key, p => p.Value);
        stateDict.Remove("Mixed_7c.branch_pool.conv.weight");
        stateDict["Mixed_7c.bn.num_batches_tracked"] = zeros(1);
        var error = Assert.Throws<InvalidDataException>(() => FidInceptionV3.FromStateDict(stateDict, "test weights"));
        Assert.Contains("Mixed_7c.branch_pool.conv.weight", error.Message);
        Assert.DoesNotContain("num_batches_tracked", error.Message);
    }
}
