using RAE.Client.Commands;
using RAE.Cluster.Tests.Client;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage1;
using RAE.Models.Stage1;
using Xunit.Abstractions;
using static RAE.Cluster.Tests.Stage1.DecoderTestJobs;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Stage1;

/// <summary>The Stage 1 decoder worker without Orleans: rank-count independence with the GAN branch, exact resume, learning, export.</summary>
public sealed class DecoderRankWorkerTests : IDisposable
{
    private readonly ITestOutputHelper output;

    private readonly string _root = NewBlobRoot();
    private readonly Grains.Storage.FileSystemBlobStore _store;

    public DecoderRankWorkerTests(ITestOutputHelper output)
    {
        this.output = output;
        _store = StoreWithDataset(_root);
    }

    [Fact]
    public void TwoRanksWithBatchBTrainLikeOneRankWithBatchTwoBWithTheGanBranchOn()
    {
        var oneRank = Train(Spec(ranks: 1), 3);
        var twoRanks = Train(Spec(ranks: 2), 3);

        Assert.True(RelativeDifference(oneRank.Initial, oneRank.Parameters) > 1e-3, "training must move the parameters, or the comparison proves nothing");
        var difference = RelativeDifference(oneRank.Parameters, twoRanks.Parameters);
        output.WriteLine($"decoder + discriminator: 2 ranks x 4 vs 1 rank x 8 differ by {difference:E2} relative; lambda per step {string.Join(", ", oneRank.Reports.Select(r => r.Details["lambda"].ToString("G4")))}");
        Assert.True(difference < 1e-5, $"2 ranks x 4 differ from 1 rank x 8 by {difference:E2} relative");
        for (var step = 0; step < 3; step++)
        {
            var (one, two) = (oneRank.Reports[step].Details, twoRanks.Reports[step].Details);
            Assert.True(one["lambda"] > 0, "the GAN branch must be on, with a positive adaptive weight");
            Assert.Equal(one["lambda"], two["lambda"], 1e-4 * one["lambda"]);
            Assert.Equal(one["disc_loss"], two["disc_loss"], 1e-4);
            Assert.Equal(oneRank.Reports[step].Loss, twoRanks.Reports[step].Loss, 1e-5);
        }
    }

    [Fact]
    public void ResumingFromAMidRunStateOnAnotherRankCountContinuesBitForBit()
    {
        var spec = Spec(ranks: 2, steps: 4);
        var workers = CreateWorkers(spec, _store);
        byte[] uninterrupted, midRun;
        try
        {
            Advance(workers, 1, 2);
            midRun = workers[0].GetState();
            Advance(workers, 3, 4);
            uninterrupted = workers[0].GetState();
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }

        var resumed = CreateWorkers(spec, _store);
        try
        {
            foreach (var worker in resumed) worker.LoadState(midRun);
            Assert.Equal(2, resumed[0].Step);
            Advance(resumed, 3, 4);
            Assert.Equal(uninterrupted, resumed[0].GetState());
            Assert.Equal(uninterrupted, resumed[1].GetState());
        }
        finally
        {
            foreach (var worker in resumed) worker.Dispose();
        }
    }

    [Fact]
    public async Task AShortRunBringsTheHeldOutReconstructionErrorWellBelowTheUntrainedDecodersAndExportsTheEmaDecoder()
    {
        const int steps = 36;
        var spec = Spec(ranks: 1, steps: steps, "gan.loss.disc_start=4", "gan.loss.disc_upd_start=3", $"training.sample_every={steps}");
        using var heldOut = HeldOut(8);
        var worker = CreateWorkers(spec, _store)[0];
        try
        {
            var untrained = HeldOutL1(worker, ema: true, heldOut);
            var reports = Advance([worker], 1, steps);
            var trainedEma = HeldOutL1(worker, ema: true, heldOut);
            var trainedRaw = HeldOutL1(worker, ema: false, heldOut);
            output.WriteLine($"held-out L1 (8 images): untrained {untrained:F4}, after {steps} steps EMA {trainedEma:F4}, raw {trainedRaw:F4}; " +
                $"last step: rec {reports[^1].Details["rec_loss"]:F4} lambda {reports[^1].Details["lambda"]:G4} disc acc {reports[^1].Details["disc_acc"]:F2}");
            Assert.True(trainedEma < 0.6 * untrained, $"held-out L1 fell only from {untrained:F4} to {trainedEma:F4} (EMA decoder)");
            Assert.Contains("logits_real", reports[^1].Details.Keys);

            var grid = await _store.GetAsync(DecoderRankWorker.ReconstructionGridPath("stage1-test", steps));
            var size = SixLabors.ImageSharp.Image.Identify(grid.Data);
            Assert.Equal((8 * ImageSide, 2 * ImageSide), (size.Width, size.Height));

            var folder = Directory.CreateDirectory(Path.Combine(_root, "export")).FullName;
            var payload = Path.Combine(folder, "state.ckpt");
            File.WriteAllBytes(payload, worker.GetState());
            var exported = Path.Combine(folder, "model.safetensors");
            var checkpoint = new CheckpointInfo("stage1-test", steps, payload, new FileInfo(payload).Length, "", null, DateTimeOffset.UtcNow);
            var count = CheckpointsExportCommand.ExportPayload(checkpoint, payload, "ema", weightsExplicit: true, exported);
            Assert.Equal(worker.EmaDecoder.state_dict().Count, count);
            using var loaded = new GeneralDecoder(worker.EmaDecoder.Config);
            StrictWeightLoader.Load(loaded, exported);
            var expected = worker.EmaDecoder.state_dict();
            foreach (var (name, value) in loaded.state_dict())
                Assert.True(value.equal(expected[name]).item<bool>(), $"exported '{name}' differs from the EMA decoder's");
        }
        finally
        {
            worker.Dispose();
        }
    }

    [Fact]
    public void TheReferenceStage1TrainingConfigIsAcceptedAndItsMissingWeightsAreNamedByKey()
    {
        var reference = RaeConfig.Load(Cli.RepositoryFile("configs/stage1/training/DINOv2-B_decXL.yaml"),
            ["data.source=dataset", $"data.name={DatasetName}", $"data.num_samples={DatasetSize}"]);
        Assert.Equal(TrainingJobSpecs.DecoderWorkload, TrainingJobSpecs.DefaultWorkloadOf(reference));
        var spec = TrainingJobSpecs.FromConfig(reference, ranks: 1, TrainingJobSpecs.DecoderWorkload);
        Assert.Equal(512, spec.GlobalBatchSize);
        using var worker = new DecoderRankWorker(_store);
        var error = Assert.ThrowsAny<Exception>(() => worker.Initialize(new RankWorkerContext(spec with { GlobalBatchSize = 8 }, 0, 1, "cpu", 1)));
        Assert.Contains("stage_1.params.", error.Message);
        output.WriteLine(error.Message);
    }

    private static double HeldOutL1(DecoderRankWorker worker, bool ema, Tensor images)
    {
        using var reconstructions = worker.Reconstruct(images, ema);
        using var error = (reconstructions - images).abs().mean();
        return error.item<float>();
    }

    private (float[] Initial, float[] Parameters, List<(double Loss, Dictionary<string, double> Details)> Reports) Train(TrainingJobSpec spec, int steps)
    {
        var workers = CreateWorkers(spec, _store);
        try
        {
            var initial = workers[0].GetParameters();
            var reports = Advance(workers, 1, steps);
            return (initial, workers[0].GetParameters(), reports);
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}
