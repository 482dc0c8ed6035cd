using RAE.Client.Commands;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Grains.Workers.Stage1;
using Xunit.Abstractions;
using static RAE.Cluster.Tests.Stage1.DecoderTestJobs;

namespace RAE.Cluster.Tests.Stage1;

/// <summary>The rae-decoder workload through the 3-silo TestCluster: coordinator, rank grains and the multi-phase all-reduce.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DecoderClusterTrainingTests(ClusterFixture fixture, ITestOutputHelper output)
{
    private const int Steps = 6;
    private const string Dataset = "stage1-shapes-cluster";

    [Fact]
    public async Task TwoRankStage1JobWithTheGanBranchCompletesReportsItsGanValuesWritesGridsAndExportsTheEmaDecoder()
    {
        var store = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = Path.Combine(fixture.DataFolder, "blobs") });
        await WriteDatasetAsync(store, Dataset);
        var spec = Spec(ranks: 2, steps: Steps, $"data.name={Dataset}", "training.sample_every=3") with
        {
            CheckpointInterval = 3,
            CollectiveTimeout = TimeSpan.FromSeconds(60),
        };
        var jobId = await fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).SubmitTraining(spec);
        var status = await fixture.WaitForEndAsync(jobId, TimeSpan.FromSeconds(300));

        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(Steps, status.Step);
        Assert.Equal(2, status.Ranks.Count);
        Assert.Equal(Steps, status.LastCheckpointStep);

        var metrics = await fixture.Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, Steps).Select(s => (long)s), metrics.Select(m => m.Step));
        foreach (var step in metrics)
        {
            var details = step.Details ?? throw new Xunit.Sdk.XunitException($"step {step.Step} reports no Stage 1 details");
            output.WriteLine($"step {step.Step}: loss {step.Loss:F4} " + string.Join(" ", details.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value:G4}")));
            Assert.True(details["lambda"] > 0, $"step {step.Step}: the GAN branch is on from step 1, λ must be positive");
            foreach (var key in new[] { "rec_loss", "gan_loss", "disc_loss", "disc_acc", "logits_real", "logits_fake" })
                Assert.True(double.IsFinite(details[key]), $"step {step.Step}: {key} {details[key]}");
            Assert.InRange(details["disc_acc"], 0, 1);
        }

        // The last step's Stage 1 values are published on the Orleans meter, where the dashboard's silo counters read them.
        var published = new List<(string? Job, string? Name, double Value)>();
        using (var listener = new System.Diagnostics.Metrics.MeterListener())
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Microsoft.Orleans" && instrument.Name == RAE.Grains.Training.SiloTrainingMetrics.DetailInstrument)
                    l.EnableMeasurementEvents(instrument);
            };
            listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
            {
                string? job = null, name = null;
                foreach (var tag in tags)
                {
                    if (tag.Key == "job") job = tag.Value as string;
                    if (tag.Key == "value") name = tag.Value as string;
                }
                published.Add((job, name, value));
            });
            listener.Start();
            listener.RecordObservableInstruments();
        }
        foreach (var key in new[] { "rec_loss", "lambda", "disc_acc", "logits_real", "logits_fake" })
            Assert.Contains((jobId, key, metrics[^1].Details![key]), published);

        // The same job in-process (the test's own driver of the phases) reports the same first step.
        var localRoot = NewBlobRoot();
        var local = CreateWorkers(Spec(ranks: 2, steps: Steps), StoreWithDataset(localRoot));
        try
        {
            var first = Advance(local, 1, 1)[0];
            Assert.Equal(first.Details["lambda"], metrics[0].Details!["lambda"], 1e-4 * first.Details["lambda"]);
            Assert.Equal(first.Loss, metrics[0].Loss, 1e-5);
        }
        finally
        {
            foreach (var worker in local) worker.Dispose();
            Directory.Delete(localRoot, recursive: true);
        }

        foreach (var step in new[] { 3, 6 })
            Assert.True(await store.ExistsAsync(DecoderRankWorker.ReconstructionGridPath(jobId, step)), $"no reconstruction grid for step {step}");

        var checkpoint = await fixture.Grains.GetGrain<ICheckpointStoreGrain>(jobId).Latest() ?? throw new Xunit.Sdk.XunitException("no committed checkpoint");
        var exported = Path.Combine(fixture.DataFolder, $"{jobId}-decoder-ema.safetensors");
        var count = await CheckpointsExportCommand.ExportAsync(fixture.Grains, checkpoint, "ema", weightsExplicit: true, exported);
        IReadOnlyList<string> names;
        await using (var file = File.OpenRead(exported)) names = RAE.Models.IO.SafeTensors.ReadNames(file, exported);
        Assert.Equal(count, names.Count);
        Assert.Contains("decoder_pred.weight", names);
        Assert.Contains("decoder_pos_embed", names);
        Assert.DoesNotContain(names, name => name.StartsWith("disc.", StringComparison.Ordinal) || name.StartsWith("decoder.", StringComparison.Ordinal));
    }
}
