using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.TestingHost;
using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Silo;

namespace RAE.Cluster.Tests;

/// <summary>Three in-process silos (or as many as asked) with one "cpu" device each, sharing one temporary data folder.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const string DataFolderKey = "RaeTestDataFolder";

    private readonly int _silos;

    public ClusterFixture() : this(silos: 3)
    {
    }

    /// <summary>A cluster of <paramref name="silos"/> silos (xunit builds fixtures with the public constructor: three).</summary>
    internal ClusterFixture(int silos) => _silos = silos;

    public string DataFolder { get; } = Path.Combine(Path.GetTempPath(), "rae-cluster-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public TestCluster Cluster { get; private set; } = null!;
    public IGrainFactory Grains => Cluster.GrainFactory;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(DataFolder);
        await DeployAsync();
    }

    /// <summary>
    /// Kills every silo at once (no graceful deactivation, as when their processes crash) and starts a new cluster on the
    /// same data folder: grain state and blobs survive, everything in memory is lost.
    /// </summary>
    /// <param name="whileDown">What happens to the storage while no silo runs.</param>
    public async Task CrashAndRestartAsync(Func<Task>? whileDown = null)
    {
        foreach (var silo in Cluster.GetActiveSilos().ToList()) await Cluster.KillSiloAsync(silo);
        await Cluster.DisposeAsync();
        if (whileDown is not null) await whileDown();
        await DeployAsync();
    }

    private async Task DeployAsync()
    {
        var builder = new TestClusterBuilder((short)_silos);
        builder.Properties[DataFolderKey] = DataFolder;
        builder.AddSiloBuilderConfigurator<RaeTestSiloConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        try
        {
            Directory.Delete(DataFolder, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a stopping silo; the temp folder is cleaned by the OS.
        }
    }

    /// <summary>The silos' checkpoint payload store (the blob store they share), for reading payloads back.</summary>
    public ICheckpointPayloadStore CheckpointPayloads =>
        ((InProcessSiloHandle)Cluster.Primary!).SiloHost.Services.GetRequiredService<ICheckpointPayloadStore>();

    public async Task<TrainingJobStatus> WaitForEndAsync(string jobId, TimeSpan? timeout = null)
    {
        var coordinator = Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        while (true)
        {
            var status = await coordinator.GetStatus();
            if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return status;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Job {jobId} is still {status.State} at step {status.Step} after the test's deadline.");
            await Task.Delay(100);
        }
    }
}

public sealed class RaeTestSiloConfigurator : ISiloConfigurator
{
    /// <summary>Where test jobs name their files: temporary folders and the golden fixtures; nowhere else.</summary>
    public static string[] TestDataRoots => [Path.GetTempPath(), RAE.Models.Tests.Fixtures.Root];

    public void Configure(ISiloBuilder siloBuilder)
    {
        var options = new RaeSiloOptions
        {
            DataFolder = siloBuilder.Configuration[ClusterFixture.DataFolderKey] ?? throw new InvalidOperationException("The test cluster has no data folder."),
            Devices = ["cpu"],
            DataRoots = TestDataRoots,
        };
        RaeSiloHost.AddFileGrainStorage(siloBuilder, options);
        RaeSiloHost.ConfigureRaeSilo(siloBuilder, options);
        siloBuilder.Configure<ClusterMembershipOptions>(membership =>
        {
            membership.ProbeTimeout = TimeSpan.FromSeconds(1);
            membership.NumMissedProbesLimit = 2;
            membership.NumVotesForDeathDeclaration = 1;
            membership.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            membership.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(2);
        });
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "three-silo cluster";
}
