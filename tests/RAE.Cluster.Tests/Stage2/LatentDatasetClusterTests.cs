using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Datasets;
using RAE.Cluster.Tests.Checkpoints;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>
/// Stage 2 on a latent dataset through the cluster (one silo on Azurite): a job whose checkpoint upload dies is restored
/// by the coordinator and ends with the loss curve of an undisturbed job, bit for bit; bad datasets are refused at
/// submission with the problem named.
/// </summary>
[Collection(AzuriteStorageClusterCollection.Name)]
public sealed class LatentDatasetClusterTests(AzuriteStorageCluster cluster)
{
    private IJobRegistryGrain Registry => cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task ResumeAfterACoordinatorForcedRestoreReproducesTheUndisturbedLossCurveBitForBit()
    {
        const string dataset = "resume-latents";
        await LatentTestDatasets.WriteAsync(cluster.Store.Inner, dataset);
        var spec = LatentTestDatasets.Spec(dataset, ranks: 1, accumulation: 2, steps: 8) with { CheckpointInterval = 3 };

        var undisturbed = await Registry.SubmitTraining(spec);
        var expectedStatus = await cluster.WaitForEndAsync(undisturbed);
        Assert.True(expectedStatus.State == JobState.Completed, $"undisturbed job ended {expectedStatus.State}: {expectedStatus.FailureReason}");
        var expected = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(undisturbed).GetMetrics(0);

        // The step-6 checkpoint upload dies: the coordinator restores step 3 and redoes steps 4..6 (across the epoch boundary at 5).
        using var dyingUpload = cluster.Store.HoldThenFailPut(path => path.Contains("/step-000000006.", StringComparison.Ordinal));
        var disturbed = await Registry.SubmitTraining(spec);
        await dyingUpload.Held.WaitAsync(TimeSpan.FromSeconds(60));
        dyingUpload.Release();
        var status = await cluster.WaitForEndAsync(disturbed);
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        Assert.Equal(3, status.RestoredFromStep);
        Assert.Equal(1, status.Recoveries);

        var actual = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(disturbed).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, 8).Select(step => (long)step), actual.Select(m => m.Step));
        Assert.Equal(expected.Select(m => m.Loss), actual.Select(m => m.Loss));
        var catalog = cluster.Grains.GetGrain<ICheckpointStoreGrain>(disturbed);
        var last = await cluster.Payloads.ReadAsync((await catalog.Latest())!);
        var reference = await cluster.Payloads.ReadAsync((await cluster.Grains.GetGrain<ICheckpointStoreGrain>(undisturbed).Latest())!);
        Assert.Equal(reference, last);
    }

    [Fact]
    public async Task BadLatentDatasetsAreRefusedAtSubmissionNamingTheProblem()
    {
        var unknown = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitTraining(LatentTestDatasets.Spec("no-such-latents", ranks: 1)));
        Assert.Contains("latent dataset 'no-such-latents' does not exist", unknown.Message);
        var described = await Assert.ThrowsAsync<RaeJobException>(() => cluster.Grains.GetGrain<ILatentDatasetInfoGrain>("no-such-latents").Describe());
        Assert.Contains("does not exist", described.Message);

        await LatentTestDatasets.WriteAsync(cluster.Store.Inner, "twelve-classes", classes: 12);
        var classes = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitTraining(LatentTestDatasets.Spec("twelve-classes", ranks: 1)));
        Assert.Contains("latent dataset 'twelve-classes' has 12 classes but the config's num_classes is 10", classes.Message);

        await LatentTestDatasets.WriteAsync(cluster.Store.Inner, "small-latents", shape: [4, 2, 2]);
        var info = await cluster.Grains.GetGrain<ILatentDatasetInfoGrain>("small-latents").Describe();
        Assert.Equal((40L, 10, true), (info.Count, info.Classes, info.HasStatistics));
        Assert.Equal([4L, 2, 2], info.LatentShape);
        var shape = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitTraining(LatentTestDatasets.Spec("small-latents", ranks: 1)));
        Assert.Contains("latent dataset 'small-latents' holds latents [4, 2, 2] but the config expects [4, 4, 4] (misc.latent_size)", shape.Message);

        using (cluster.Store.FailFrom(path => path.StartsWith(LatentBlobs.Root + "/", StringComparison.Ordinal), _ => true))
        {
            var unreachable = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitTraining(LatentTestDatasets.Spec("small-latents", ranks: 1)));
            Assert.Contains("latent dataset 'small-latents': the blob storage", unreachable.Message);
            Assert.Contains("is unreachable", unreachable.Message);
            Assert.Contains(cluster.Store.Location, unreachable.Message);
        }
    }
}
