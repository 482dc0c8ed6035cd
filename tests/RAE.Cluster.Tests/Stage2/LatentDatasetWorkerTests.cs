using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging.Abstractions;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Storage;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage2;
using RAE.Cluster.Tests.Storage;
using static RAE.Cluster.Tests.Stage2.DiTTestJobs;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>
/// DiT^DH rank workers on a latent dataset in Azurite, driven in process (no Orleans): data parallelism, real epochs,
/// the LR schedule's epoch length, exact resume and a damaged shard.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class LatentDatasetWorkerTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private const string Dataset = "tiny-latents";
    private readonly string _container = "rae-latents-" + Guid.NewGuid().ToString("N")[..12];
    private readonly string _cacheFolder = Path.Combine(Path.GetTempPath(), "rae-latent-worker-tests-" + Guid.NewGuid().ToString("N")[..8]);
    private AzureBlobStore _store = null!;
    private LatentTrainingData _data = null!;

    public async Task InitializeAsync()
    {
        _store = new AzureBlobStore(new AzureBlobStoreOptions { ConnectionString = azurite.ConnectionString, ContainerName = _container });
        await _store.EnsureAvailableAsync();
        _data = new LatentTrainingData(_store, new LatentCacheOptions { Directory = _cacheFolder }, NullLoggerFactory.Instance);
        await LatentTestDatasets.WriteAsync(_store, Dataset);
    }

    public async Task DisposeAsync()
    {
        await new BlobContainerClient(azurite.ConnectionString, _container).DeleteIfExistsAsync();
        if (Directory.Exists(_cacheFolder)) Directory.Delete(_cacheFolder, recursive: true);
    }

    private DiTRankWorker[] CreateWorkers(TrainingJobSpec spec, int? worldSize = null)
    {
        var world = worldSize ?? spec.Ranks;
        var workers = new DiTRankWorker[world];
        for (var rank = 0; rank < world; rank++)
        {
            workers[rank] = new DiTRankWorker(_data);
            workers[rank].Initialize(new RankWorkerContext(spec, rank, world, "cpu", 1));
        }
        return workers;
    }

    private TrainingRun Run(TrainingJobSpec spec, int steps)
    {
        var workers = CreateWorkers(spec);
        try
        {
            var losses = Advance(workers, 1, steps);
            return new TrainingRun(workers[0].GetParameters(), losses, workers[0].GetState());
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }
    }

    [Fact]
    public void TwoRanksGiveOneRankWithTwiceTheMicroBatchAcrossAnEpochBoundary()
    {
        // 40 latents / global batch 8: 5 steps per epoch, so step 6 is the first of epoch 1.
        const int steps = 6;
        var initial = Run(LatentTestDatasets.Spec(Dataset, ranks: 1), 0).Parameters;
        var oneRank = Run(LatentTestDatasets.Spec(Dataset, ranks: 1), steps);
        var twoRanks = Run(LatentTestDatasets.Spec(Dataset, ranks: 2), steps);
        var accumulated = Run(LatentTestDatasets.Spec(Dataset, ranks: 1, accumulation: 2), steps);

        Assert.True(RelativeDifference(initial, oneRank.Parameters) > 1e-3, "training must move the parameters, or the comparison proves nothing");
        var difference = RelativeDifference(oneRank.Parameters, twoRanks.Parameters);
        Assert.True(difference < 1e-5, $"2 ranks x 4 differ from 1 rank x 8 by {difference:E2} relative");
        var micro = RelativeDifference(oneRank.Parameters, accumulated.Parameters);
        Assert.True(micro < 1e-5, $"1 rank x 2 micro-batches of 4 differ from 1 rank x 8 by {micro:E2} relative");
        for (var step = 0; step < steps; step++) Assert.Equal(oneRank.Losses[step], twoRanks.Losses[step], 4);
    }

    [Fact]
    public void WorkerReadsTheDatasetWithItsOwnStatisticsAndTakesTheEpochLengthFromItsSize()
    {
        // warm-up from zero over one epoch (5 steps of 8 out of 40 latents): step 1 runs at base_lr / 5.
        var spec = LatentTestDatasets.Spec(Dataset, ranks: 1, overrides: ["training.scheduler.warmup_steps=", "training.scheduler.warmup_epochs=1"]);
        var workers = CreateWorkers(spec);
        try
        {
            var worker = workers[0];
            Assert.Equal(40, worker.DatasetSize);
            Assert.Contains("latents/tiny-latents/stat.pt", worker.Latents!.NormalizationSource);
            var gradients = worker.ComputeGradients(1);
            Assert.Equal(5e-3 / 5, worker.ApplyUpdate(1, gradients.Gradients), 12);
            Assert.Equal(2, worker.Latents.Cache.Fetches);
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }

        // The spec's steps come from the same size: 100 epochs of 5 steps.
        var epochs = TrainingJobSpecs.FromConfig(RAE.Configuration.RaeConfig.Parse(TinyConfig, "tiny", ["data.source=latents", $"data.dataset={Dataset}", "training.max_steps="]), 1, latentDatasetSize: 40);
        Assert.Equal(500, epochs.Steps);
    }

    [Fact]
    public async Task BatchesAreTheStoredLatentsNormalisedByTheConfigsStatisticsWithFlipsAndPrefetch()
    {
        var statistics = Path.Combine(_cacheFolder, "stat.pt");
        Directory.CreateDirectory(_cacheFolder);
        using (var mean = TorchSharp.torch.full([4, 4, 4], 1f))
        using (var variance = TorchSharp.torch.full([4, 4, 4], 3f))
            RAE.Models.IO.TorchSaveWriter.Save(statistics, [new("mean", mean), new("var", variance)]);
        var spec = LatentTestDatasets.Spec(Dataset, ranks: 2, overrides: ["stage_1.target=stage1.RAE", $"stage_1.params.normalization_stat_path={statistics}", "stage_1.params.eps=0.5"]);
        var workers = CreateWorkers(spec);
        try
        {
            var stream = workers[1].Latents!;
            Assert.Contains(statistics, stream.NormalizationSource);
            stream.BeginStep(1);
            using var batch = stream.MicroBatch(1, 0, 4, TorchSharp.torch.CPU);
            var planned = stream.Plan.Samples(1, 0, 4);
            Assert.Equal([1, 3, 5, 7], planned.Select(sample => sample.GlobalSlot));
            using var reader = new RAE.Models.Data.LatentDatasetReader(stream.Manifest, stream.Cache);
            var raw = await reader.ReadAsync(planned.Select(sample => (sample.DatasetIndex, stream.Flipped(1, sample.GlobalSlot))).ToArray());
            using var stored = TorchSharp.torch.tensor(raw.Latents).view(4, 4, 4, 4);
            using var expected = (stored - 1f) / MathF.Sqrt(3.5f);
            Assert.True(batch.Latents.allclose(expected, rtol: 0, atol: 1e-6), "the batch must be the stored latents, normalised with the config's statistics");
            Assert.Equal(raw.Labels, batch.Labels.data<long>().ToArray());

            // Flips: about half of an epoch's samples read the mirrored image's latents.
            var flipped = Enumerable.Range(1, 5).Sum(step => Enumerable.Range(0, 8).Count(slot => stream.Flipped(step, slot)));
            Assert.InRange(flipped, 10, 30);
            Advance(workers, 1, 3);
            Assert.Equal(2, stream.PrefetchedSteps);
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }

        await LatentTestDatasets.WriteAsync(_store, "unflipped-latents", flips: false);
        var unflipped = CreateWorkers(LatentTestDatasets.Spec("unflipped-latents", ranks: 1));
        try
        {
            Assert.DoesNotContain(Enumerable.Range(0, 8), slot => unflipped[0].Latents!.Flipped(1, slot));
        }
        finally
        {
            unflipped[0].Dispose();
        }
    }

    [Fact]
    public void ResumingFromAMidRunStateReadsExactlyTheBatchesOfAnUninterruptedRun()
    {
        const int stop = 3, steps = 8;
        var spec = LatentTestDatasets.Spec(Dataset, ranks: 2);
        var uninterrupted = Run(spec, steps);

        byte[] state;
        List<double> before;
        var workers = CreateWorkers(spec);
        try
        {
            before = Advance(workers, 1, stop);
            state = workers[0].GetState();
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }

        var resumed = CreateWorkers(spec);
        try
        {
            foreach (var worker in resumed) worker.LoadState(state);
            var after = Advance(resumed, stop + 1, steps);
            Assert.Equal(uninterrupted.Losses, before.Concat(after));
            Assert.Equal(uninterrupted.Parameters, resumed[0].GetParameters());
        }
        finally
        {
            foreach (var worker in resumed) worker.Dispose();
        }

        // A group re-formed on one surviving rank reads the same global batches (same losses up to summation order).
        var survivor = CreateWorkers(spec, worldSize: 1);
        try
        {
            survivor[0].LoadState(state);
            var after = Advance(survivor, stop + 1, steps);
            for (var i = 0; i < after.Count; i++) Assert.Equal(uninterrupted.Losses[stop + i], after[i], 4);
        }
        finally
        {
            survivor[0].Dispose();
        }
    }

    [Fact]
    public async Task ShardFailingItsChecksumFailsTheStepNamingTheShard()
    {
        const string damaged = "damaged-latents";
        var manifest = await LatentTestDatasets.WriteAsync(_store, damaged);
        // The blob is intact as a blob, but holds other bytes than the manifest's shard-00001.
        var other = await _store.GetAsync(LatentBlobs.ShardPathOf(damaged, manifest.Shards[0].File));
        await _store.PutBytesAsync(LatentBlobs.ShardPathOf(damaged, manifest.Shards[1].File), other.Data);

        var workers = CreateWorkers(LatentTestDatasets.Spec(damaged, ranks: 1));
        try
        {
            // One epoch reads every latent, so it reaches the damaged shard.
            var error = Assert.Throws<InvalidDataException>(() => Advance(workers, 1, 5));
            Assert.Contains($"latent dataset '{damaged}' shard shard-00001.safetensors fails its checksum", error.Message);
        }
        finally
        {
            workers[0].Dispose();
        }
    }
}
