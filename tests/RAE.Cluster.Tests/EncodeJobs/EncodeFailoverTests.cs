using System.Diagnostics;
using RAE.Cluster.Tests.Failover;
using RAE.Cluster.Tests.Storage;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Data;
using Xunit.Abstractions;

namespace RAE.Cluster.Tests.EncodeJobs;

/// <summary>
/// An encode job on two silo processes (Azure Table membership, Azure Blob grain state and blobs on Azurite) whose job
/// grain's silo is SIGKILLed mid-job: the job resumes on the survivor and completes with every shard exactly once, and
/// the latents are byte for byte those of an in-process (single-silo) encode.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class EncodeFailoverTests(AzuriteFixture azurite, ITestOutputHelper log)
{
    [Fact]
    public async Task KillingTheSiloOfTheJobMidJobStillGivesEveryShardOnceWithTheLatentsOfASingleSiloRun()
    {
        var clock = Stopwatch.StartNew();
        var cluster = await AzureSiloProcessCluster.StartAsync(azurite, 2);
        await using (cluster)
        {
            try
            {
                await RunAndKillAsync(cluster, clock);
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                throw new Xunit.Sdk.XunitException($"{error.Message}{Environment.NewLine}{cluster.Diagnostics()}", error);
            }
        }
    }

    private async Task RunAndKillAsync(AzureSiloProcessCluster cluster, Stopwatch clock)
    {
        var grains = cluster.Client.Grains;
        var dataset = await EncodeTestData.AddDatasetAsync(grains, "encode-failover", classes: 3, perClass: 12, shardSize: 4);
        var latents = dataset + "-latents";
        // A pause after each shard keeps the job running long enough for the kill to land mid-job.
        var spec = EncodeTestData.Spec(dataset, latents) with { ShardDelay = TimeSpan.FromSeconds(1) };
        var jobId = await cluster.Client.SubmitEncodingAsync(spec);
        var job = grains.GetGrain<IEncodeJobGrain>(jobId);
        var running = await AzureSiloProcessCluster.PollAsync(job.GetStatus, s => s.ShardsDone >= 2 || s.State is not (JobState.Pending or JobState.Running),
            TimeSpan.FromSeconds(120), Describe);
        Assert.True(running.State == JobState.Running && running.ShardsDone < running.ShardsTotal, "the job should still run at the kill: " + Describe(running));

        var victim = cluster.SiloAt(await cluster.Management.GetActivationAddress(job)
            ?? throw new InvalidOperationException($"encode job {jobId} has no activation"));
        await victim.KillAsync();
        log.WriteLine($"killed {victim.Name}, the encode job's silo, at {Describe(running)} after {clock.Elapsed.TotalSeconds:0.0} s");

        var final = await AzureSiloProcessCluster.PollAsync(job.GetStatus, s => s.State is JobState.Completed or JobState.Failed or JobState.Cancelled,
            TimeSpan.FromSeconds(180), Describe);
        log.WriteLine($"job ended {Describe(final)} after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(final.State == JobState.Completed, Describe(final));
        Assert.True(final.Resumptions >= 1, "the job grain should have been re-activated on the survivor: " + Describe(final));

        var store = new AzureBlobStore(new AzureBlobStoreOptions { ConnectionString = azurite.ConnectionString, ContainerName = "rae" });
        var manifest = LatentDatasetManifest.FromJson(System.Text.Encoding.UTF8.GetString((await store.GetAsync(final.OutputLocation!)).Data), latents);
        var imageShards = Enumerable.Range(0, 9).Select(i => $"shard-{i:D5}.bin").ToList();
        Assert.Equal(imageShards, manifest.Shards.Select(s => s.SourceShard));
        Assert.Equal(36, manifest.Count);
        Assert.Equal(imageShards.Select(s => s.Replace(".bin", ".safetensors", StringComparison.Ordinal)),
            (await store.ListAsync($"latents/{latents}/shard-").ToListAsync()).Select(b => b.Path.Split('/')[^1]).Order(StringComparer.Ordinal));
        var expected = await EncodeTestData.EncodeDirectlyAsync(store, dataset, new ShardEncoderOptions(EncodeTestData.EncoderInputSize, spec.BatchSize));
        for (var i = 0; i < manifest.Shards.Count; i++)
        {
            var stored = (await store.GetAsync($"latents/{latents}/{manifest.Shards[i].File}")).Data;
            Assert.True(expected[i].AsSpan().SequenceEqual(stored), $"latent shard {i} differs from the single-silo encode");
        }
    }

    private static string Describe(EncodeJobStatus status) =>
        $"{status.State} {status.ShardsDone}/{status.ShardsTotal} shards, resumptions {status.Resumptions}{(status.FailureReason is null ? "" : ": " + status.FailureReason)}";
}
