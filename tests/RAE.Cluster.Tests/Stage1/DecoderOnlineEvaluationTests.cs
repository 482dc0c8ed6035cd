using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Grains.Workers.Stage1;
using RAE.Models.Metrics;
using static RAE.Cluster.Tests.Stage1.DecoderTestJobs;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Stage1;

/// <summary>
/// Stage 1 online evaluation: PSNR, SSIM and rfd_resnet18 of the EMA decoder's reconstructions of a held-out dataset
/// (eval.data_path), recorded at the eval steps, with the training losses as without them.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DecoderOnlineEvaluationTests(ClusterFixture fixture)
{
    private const string Dataset = "stage1-shapes-online";
    private const string HeldOutDataset = "stage1-shapes-held-out";
    private const int Samples = 6;

    private static TrainingJobSpec Spec(bool evaluate, string metrics = "[psnr, ssim, rfd_resnet18]", string? heldOut = HeldOutDataset) =>
        TrainingJobSpecs.FromConfig(RaeConfig.Parse(Config + (evaluate ? $"""

            eval:
              eval_interval: 2
              num_samples: {Samples}
              metrics: {metrics}
            """ + (heldOut is null ? "" : $"\n  data_path: {heldOut}\n") : ""), "tiny Stage 1 online evaluation config",
            // L1 only keeps the steps cheap (the GAN phases are covered elsewhere); the latent noise stays on, so a draw the
            // evaluation took from the training's random streams would show in the losses.
            [$"data.name={Dataset}", "gan.loss.disc_weight=0", "gan.loss.perceptual_weight=0"]), 1, TrainingJobSpecs.DecoderWorkload) with
        {
            Steps = 2,
            CheckpointInterval = 0,
        };

    private static async Task WriteDatasetsAsync(IBlobStore store)
    {
        await WriteDatasetAsync(store, Dataset);
        await WriteDatasetAsync(store, HeldOutDataset, seed: 977);
    }

    [Fact]
    public async Task TheJobRecordsPsnrSsimAndRfdOfItsEmaReconstructionsOfHeldOutImagesAtEvalStepsAndTrainsAsWithoutThem()
    {
        var store = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = Path.Combine(fixture.DataFolder, "blobs") });
        await WriteDatasetsAsync(store);
        var spec = Spec(evaluate: true);
        Assert.Equal([EvaluationMetric.Psnr, EvaluationMetric.Ssim, EvaluationMetric.RfdResNet18], spec.OnlineEvaluation!.ReconstructionMetrics);
        Assert.Equal(HeldOutDataset, spec.OnlineEvaluation.ReferenceDataset);
        var jobId = await fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(spec);
        var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(240));
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal([(2L, "psnr"), (2L, "ssim"), (2L, "rfd_resnet18")], status.Evaluations.Select(e => (e.Step, e.Metric)));

        // In process: the same steps with and without evaluation, and the scores computed directly from the EMA decoder.
        var root = NewBlobRoot();
        var localStore = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = root });
        await WriteDatasetsAsync(localStore);
        var evaluating = CreateWorkers(spec, localStore);
        var plain = CreateWorkers(Spec(evaluate: false), localStore);
        try
        {
            var withEval = Advance(evaluating, 1, 2);
            var withoutEval = Advance(plain, 1, 2);
            Assert.Equal(withoutEval.Select(r => r.Loss), withEval.Select(r => r.Loss)); // bit for bit
            Assert.DoesNotContain(withEval[0].Details.Keys, key => key.StartsWith("eval/", StringComparison.Ordinal));
            Assert.Equal(evaluating[0].GetParameters(), plain[0].GetParameters());

            var heldOut = DirectScores(evaluating[0], localStore, HeldOutDataset);
            Assert.Equal(heldOut.Psnr, withEval[1].Details["eval/psnr"]);
            Assert.Equal(heldOut.Ssim, withEval[1].Details["eval/ssim"]);
            Assert.Equal(heldOut.Rfd, withEval[1].Details["eval/rfd_resnet18"]);
            Assert.Equal(heldOut.Psnr, status.Evaluations[0].Value, 4);
            Assert.Equal(heldOut.Ssim, status.Evaluations[1].Value, 4);
            Assert.Equal(heldOut.Rfd, status.Evaluations[2].Value, 3);
            Assert.InRange(heldOut.Psnr, 3, 60);
            Assert.InRange(heldOut.Ssim, -1, 1);
            Assert.True(double.IsFinite(heldOut.Rfd) && heldOut.Rfd > 0, $"rfd_resnet18 {heldOut.Rfd}");
            // The training images score otherwise: the held-out ones were the ones scored.
            Assert.NotEqual(DirectScores(evaluating[0], localStore, Dataset).Psnr, heldOut.Psnr);
        }
        finally
        {
            foreach (var worker in evaluating.Concat(plain)) worker.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task AHeldOutDatasetTheClusterLacksIsRefusedNamingTheKey()
    {
        var root = NewBlobRoot();
        try
        {
            var store = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = root });
            await WriteDatasetsAsync(store);
            Assert.Equal(DatasetSize, DatasetImageStream.ForEvaluation(store, HeldOutDataset, ImageSide, "eval.data_path").ImageCount);
            var error = Assert.Throws<ArgumentException>(() => DatasetImageStream.ForEvaluation(store, "no-such-dataset", ImageSide, "eval.data_path"));
            Assert.Contains("eval.data_path: the cluster has no dataset 'no-such-dataset'", error.Message);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void StageOneMetricsParseAndRfidWithoutInceptionWeightsIsRefusedNamingTheKey()
    {
        var defaults = Spec(evaluate: true, metrics: "[]", heldOut: null).OnlineEvaluation!;
        Assert.Equal([EvaluationMetric.Psnr, EvaluationMetric.Ssim], defaults.ReconstructionMetrics);
        Assert.Equal(Dataset, defaults.ReferenceDataset);
        var error = Assert.Throws<ConfigException>(() => Spec(evaluate: true, metrics: "[psnr, rfid]"));
        Assert.Equal("eval.inception_path", error.KeyPath);
        Assert.Contains("rfd_resnet18", error.Message);
    }

    /// <summary>PSNR, SSIM and rfd_resnet18 of the dataset's first images (center-cropped, as stored) against the EMA reconstructions, truncated to uint8 as the reference.</summary>
    private static (double Psnr, double Ssim, double Rfd) DirectScores(DecoderRankWorker worker, IBlobStore store, string dataset)
    {
        using var features = ResNet18Features.Load(); // outside the scope, which would dispose its weights
        using var scope = NewDisposeScope();
        var data = new DatasetImageStream(store, dataset, ImageSide, seed: 0, globalBatch: 1, expectedImages: DatasetSize);
        var images = data.CenterCropped(Enumerable.Range(0, Samples).Select(i => (long)i).ToArray(), CPU);
        var originals = images.mul(255).round().to(ScalarType.Byte).permute(0, 2, 3, 1);
        var reconstructions = worker.Reconstruct(images, ema: true).clamp(0, 1).mul(255).trunc().to(ScalarType.Byte).permute(0, 2, 3, 1);
        var scores = ReconstructionMetrics.Evaluate(originals, reconstructions, batchSize: 32);
        return (scores.Psnr, scores.Ssim, FeatureDistances.RfdResNet18(features, originals, reconstructions, batchSize: 32));
    }
}
