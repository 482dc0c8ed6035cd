using System.Text.Json;
using RAE.Cluster.Tests.Client;
using RAE.Models.Metrics;

namespace RAE.Cluster.Tests.Evaluation;

/// <summary>`rae eval` against an embedded silo: two local .npz files are uploaded through the cluster and scored as a direct computation scores them.</summary>
public sealed class EvalCliTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>
{
    private readonly string _folder = Path.Combine(silo.DataFolder, "eval-cli-" + Guid.NewGuid().ToString("N")[..8]);

    private Task<(int ExitCode, string Output, string Error)> Rae(params string[] args) =>
        Cli.RunAsync([.. args, "--gateway", silo.Gateway, "--cluster-id", "cli-test"]);

    private static JsonElement Result(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement)
            .Single(line => line.GetProperty("kind").GetString() == "result");

    [Fact]
    public async Task FdResNet18OfTwoNpzFilesEqualsTheDirectComputation()
    {
        using var samples = EvaluationTestData.Images(5, 8, seed: 11);
        using var reference = EvaluationTestData.Images(4, 8, seed: 12);
        var samplesFile = EvaluationTestData.WriteNpz(_folder, "samples.npz", samples);
        var referenceFile = EvaluationTestData.WriteNpz(_folder, "reference.npz", reference);

        var (exitCode, output, error) = await Rae("eval", samplesFile, "--ref", referenceFile, "--unit-size", "2", "--batch-size", "2", "--json");

        Assert.True(exitCode == 0, error + output);
        var result = Result(output);
        Assert.Equal("fd_resnet18", result.GetProperty("metric").GetString());
        var expected = EvaluationTestData.DirectFdResNet18(samples, reference, batchSize: 2);
        var actual = result.GetProperty("value").GetDouble();
        Assert.True(Math.Abs(actual - expected) <= 1e-12 * Math.Max(1, Math.Abs(expected)), $"rae eval {actual:R}, direct {expected:R}");
    }

    [Fact]
    public async Task PsnrSsimAndRfdOfReconstructionsEqualTheReferenceComputation()
    {
        using var originals = EvaluationTestData.Images(6, 16, seed: 13);
        using var noise = EvaluationTestData.Images(6, 16, seed: 14);
        using var reconstructions = (originals.to(TorchSharp.torch.ScalarType.Int32) + noise.to(TorchSharp.torch.ScalarType.Int32) / 8 - 6)
            .clamp(0, 255).to(TorchSharp.torch.ScalarType.Byte);
        var originalsFile = EvaluationTestData.WriteNpz(_folder, "originals.npz", originals);
        var reconstructionsFile = EvaluationTestData.WriteNpz(_folder, "reconstructions.npz", reconstructions);
        var expected = ReconstructionMetrics.Evaluate(originals, reconstructions, batchSize: 2);

        foreach (var (metric, value) in new[] { ("psnr", expected.Psnr), ("ssim", expected.Ssim) })
        {
            var (exitCode, output, error) = await Rae("eval", reconstructionsFile, "--ref", originalsFile, "--metric", metric, "--unit-size", "4", "--batch-size", "2", "--json");
            Assert.True(exitCode == 0, error + output);
            var result = Result(output);
            Assert.Equal(metric, result.GetProperty("metric").GetString());
            Assert.Equal((double)value, result.GetProperty("value").GetDouble());
        }
        // The offline rFID: rFID's numerics on the frozen ResNet18's features of both sets, their moments added per unit of 4
        // as the job merges them (its float32 means round with the order of the sums).
        double expectedRfd;
        using (var features = ResNet18Features.Load()) expectedRfd = FeatureDistances.RfdResNet18(features, originals, reconstructions, batchSize: 4);
        var (rfdExit, rfdOutput, rfdError) = await Rae("eval", reconstructionsFile, "--ref", originalsFile, "--metric", "rfd_resnet18", "--unit-size", "4", "--batch-size", "2", "--json");
        Assert.True(rfdExit == 0, rfdError + rfdOutput);
        var rfd = Result(rfdOutput);
        Assert.Equal("rfd_resnet18", rfd.GetProperty("metric").GetString());
        var actualRfd = rfd.GetProperty("value").GetDouble();
        Assert.True(double.IsFinite(expectedRfd) && expectedRfd > 0 && Math.Abs(actualRfd - expectedRfd) <= 1e-9 * expectedRfd, $"rae eval {actualRfd:R}, direct {expectedRfd:R}");

        var (textExit, text, textError) = await Rae("eval", reconstructionsFile, "--ref", originalsFile, "--metric", "psnr", "--unit-size", "4", "--batch-size", "2");
        Assert.True(textExit == 0, textError);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"psnr = {(double)expected.Psnr:G10}  (6 sample images vs 6 reference images)"), text);
    }

    [Fact]
    public async Task BadInputGivesAClearErrorAndTheRightExitCode()
    {
        using var four = EvaluationTestData.Images(4, 8, seed: 15);
        using var three = EvaluationTestData.Images(3, 16, seed: 16);
        var fourFile = EvaluationTestData.WriteNpz(_folder, "four.npz", four);
        var threeFile = EvaluationTestData.WriteNpz(_folder, "three.npz", three);

        var unknown = await Rae("eval", "sample-does-not-exist", "--ref", fourFile);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("'sample-does-not-exist' is neither a local file, a sampling job nor a dataset", unknown.Error);

        var sizes = await Rae("eval", threeFile, "--ref", fourFile, "--metric", "ssim");
        Assert.Equal(1, sizes.ExitCode);
        Assert.Contains("ssim compares two image sets of equal size", sizes.Error);
        Assert.Contains("3 images of 16x16", sizes.Error);

        var noWeights = await Rae("eval", fourFile, "--ref", fourFile, "--metric", "fid");
        Assert.Equal(2, noWeights.ExitCode);
        Assert.Contains("pt_inception-2015-12-05-6726825d.pth", noWeights.Error);

        var missingFile = await Rae("eval", Path.Combine(_folder, "missing.npz"), "--ref", fourFile);
        Assert.Equal(2, missingFile.ExitCode);
        Assert.Contains("missing.npz' does not exist", missingFile.Error);

        var export = await Rae("samples", "export", "sample-does-not-exist", "--out", Path.Combine(_folder, "out"));
        Assert.Equal(1, export.ExitCode);
        Assert.Contains("unknown", export.Error);
        Assert.Equal(0, Directory.Exists(Path.Combine(_folder, "out")) ? Directory.GetFiles(Path.Combine(_folder, "out")).Length : 0);
    }
}
