using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Grains.Workers.Stage1;
using RAE.Models.Metrics;
using static RAE.Cluster.Tests.Stage1.DecoderTestJobs;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Stage1;

/// <summary>Stage 1 online evaluation: PSNR and SSIM of the EMA decoder's reconstructions, recorded at the eval steps.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DecoderOnlineEvaluationTests(ClusterFixture fixture)
{
    private const string Dataset = "stage1-shapes-online";
    private const int Samples = 6;

    private static TrainingJobSpec Spec(bool evaluate) =>
        TrainingJobSpecs.FromConfig(RaeConfig.Parse(Config + (evaluate ? $"""

            eval:
              eval_interval: 2
              num_samples: {Samples}
              metrics: [psnr, ssim]
            """ : ""), "tiny Stage 1 online evaluation config",
            // L1 only keeps the steps cheap (the GAN phases are covered elsewhere); the latent noise stays on, so a draw the
            // evaluation took from the training's random streams would show in the losses.
            [$"data.name={Dataset}", "gan.loss.disc_weight=0", "gan.loss.perceptual_weight=0"]), 1, TrainingJobSpecs.DecoderWorkload) with
        {
            Steps = 2,
            CheckpointInterval = 0,
        };

    [Fact]
    public async Task TheJobRecordsPsnrAndSsimOfItsEmaReconstructionsAtEvalStepsAndTrainsAsWithoutThem()
    {
        var store = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = Path.Combine(fixture.DataFolder, "blobs") });
        await WriteDatasetAsync(store, Dataset);
        var spec = Spec(evaluate: true);
        Assert.Equal([EvaluationMetric.Psnr, EvaluationMetric.Ssim], spec.OnlineEvaluation!.ReconstructionMetrics);
        var jobId = await fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(spec);
        var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(240));
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal([(2L, "psnr"), (2L, "ssim")], status.Evaluations.Select(e => (e.Step, e.Metric)));

        // In process: the same steps with and without evaluation, and the scores computed directly from the EMA decoder.
        var root = NewBlobRoot();
        var localStore = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = root });
        await WriteDatasetAsync(localStore, Dataset);
        var evaluating = CreateWorkers(spec, localStore);
        var plain = CreateWorkers(Spec(evaluate: false), localStore);
        try
        {
            var withEval = Advance(evaluating, 1, 2);
            var withoutEval = Advance(plain, 1, 2);
            Assert.Equal(withoutEval.Select(r => r.Loss), withEval.Select(r => r.Loss)); // bit for bit
            Assert.DoesNotContain(withEval[0].Details.Keys, key => key.StartsWith("eval/", StringComparison.Ordinal));
            Assert.Equal(evaluating[0].GetParameters(), plain[0].GetParameters());

            var (psnr, ssim) = DirectScores(evaluating[0], localStore);
            Assert.Equal(psnr, withEval[1].Details["eval/psnr"]);
            Assert.Equal(ssim, withEval[1].Details["eval/ssim"]);
            Assert.Equal(psnr, status.Evaluations[0].Value, 4);
            Assert.Equal(ssim, status.Evaluations[1].Value, 4);
            Assert.InRange(psnr, 3, 60);
            Assert.InRange(ssim, -1, 1);
        }
        finally
        {
            foreach (var worker in evaluating.Concat(plain)) worker.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>PSNR and SSIM of the first images (center-cropped, as stored) against the EMA reconstructions, truncated to uint8 as the reference.</summary>
    private static (double Psnr, double Ssim) DirectScores(DecoderRankWorker worker, IBlobStore store)
    {
        using var scope = NewDisposeScope();
        var data = new DatasetImageStream(store, Dataset, ImageSide, seed: 0, globalBatch: 1, expectedImages: DatasetSize);
        var images = data.CenterCropped(Enumerable.Range(0, Samples).Select(i => (long)i).ToArray(), CPU);
        var originals = images.mul(255).round().to(ScalarType.Byte).permute(0, 2, 3, 1);
        var reconstructions = worker.Reconstruct(images, ema: true).clamp(0, 1).mul(255).trunc().to(ScalarType.Byte).permute(0, 2, 3, 1);
        var scores = ReconstructionMetrics.Evaluate(originals, reconstructions, batchSize: 32);
        return (scores.Psnr, scores.Ssim);
    }
}
