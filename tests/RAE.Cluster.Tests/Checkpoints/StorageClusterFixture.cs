using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.TestingHost;
using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Storage;
using RAE.Cluster.Tests.Storage;
using RAE.Silo;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// One in-process silo whose blob store is a chosen back end (file system or Azurite) behind a
/// <see cref="FaultInjectingBlobStore"/>, with fast store retries and a long call timeout (a test may hold a put).
/// </summary>
public abstract class StorageClusterFixture : IAsyncLifetime
{
    public const string KindKey = "RaeTestStorageKind";
    public const string AzureConnectionKey = "RaeTestAzureConnection";
    public const string AzureContainerKey = "RaeTestAzureContainer";

    public string DataFolder { get; } = Path.Combine(Path.GetTempPath(), "rae-storage-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public TestCluster Cluster { get; private set; } = null!;
    public IGrainFactory Grains => Cluster.GrainFactory;

    /// <summary>"fs" or "azure".</summary>
    public abstract string Kind { get; }

    /// <summary>The silo's store, under its fault injection.</summary>
    public FaultInjectingBlobStore Store => (FaultInjectingBlobStore)Services.GetRequiredService<IBlobStore>();

    public ICheckpointPayloadStore Payloads => Services.GetRequiredService<ICheckpointPayloadStore>();

    private IServiceProvider Services => ((InProcessSiloHandle)Cluster.Primary!).SiloHost.Services;

    protected virtual Task PrepareAsync(TestClusterBuilder builder) => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(DataFolder);
        var builder = new TestClusterBuilder(1);
        builder.Properties[ClusterFixture.DataFolderKey] = DataFolder;
        builder.Properties[KindKey] = Kind;
        await PrepareAsync(builder);
        builder.AddSiloBuilderConfigurator<StorageTestSiloConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public virtual async Task DisposeAsync()
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

    public async Task<TrainingJobStatus> WaitForEndAsync(string jobId, TimeSpan? timeout = null)
    {
        var coordinator = Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(120));
        while (true)
        {
            var status = await coordinator.GetStatus();
            if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return status;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Job {jobId} is still {status.State} at step {status.Step} after the test's deadline ({status.FailureReason}).");
            await Task.Delay(100);
        }
    }
}

public sealed class FileSystemStorageCluster : StorageClusterFixture
{
    public override string Kind => "fs";

    /// <summary>Where the silo's file-system store keeps its blobs.</summary>
    public string BlobRoot => Path.Combine(DataFolder, "blobs");
}

public sealed class AzuriteStorageCluster : StorageClusterFixture
{
    private readonly AzuriteFixture azurite = new();

    public override string Kind => "azure";

    public string ConnectionString => azurite.ConnectionString;

    public string ContainerName { get; } = "rae-ckpt-" + Guid.NewGuid().ToString("N")[..12];

    protected override async Task PrepareAsync(TestClusterBuilder builder)
    {
        await azurite.InitializeAsync();
        builder.Properties[AzureConnectionKey] = ConnectionString;
        builder.Properties[AzureContainerKey] = ContainerName;
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await new BlobContainerClient(ConnectionString, ContainerName).DeleteIfExistsAsync();
    }
}

public sealed class StorageTestSiloConfigurator : ISiloConfigurator
{
    /// <summary>Azure blocks of this size, so a small payload spans several staged blocks.</summary>
    public const int AzureBlockBytes = 64 * 1024;

    public void Configure(ISiloBuilder siloBuilder)
    {
        var configuration = siloBuilder.Configuration;
        var dataFolder = configuration[ClusterFixture.DataFolderKey] ?? throw new InvalidOperationException("The test cluster has no data folder.");
        var retry = new BlobStoreRetryOptions { MaxAttempts = 3, InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(100) };
        if (configuration[StorageClusterFixture.KindKey] == "azure")
        {
            siloBuilder.Services.AddAzureBlobStore(azure =>
            {
                azure.ConnectionString = configuration[StorageClusterFixture.AzureConnectionKey]!;
                azure.ContainerName = configuration[StorageClusterFixture.AzureContainerKey]!;
                azure.BlockSizeBytes = AzureBlockBytes;
                azure.Retry = retry;
            });
        }
        else
        {
            siloBuilder.Services.AddFileSystemBlobStore(files =>
            {
                files.RootPath = Path.Combine(dataFolder, "blobs");
                files.Retry = retry;
            });
        }
        var real = siloBuilder.Services.Last(d => d.ServiceType == typeof(IBlobStore));
        siloBuilder.Services.Remove(real);
        siloBuilder.Services.AddSingleton<IBlobStore>(services => new FaultInjectingBlobStore((IBlobStore)real.ImplementationFactory!(services)));

        var options = new RaeSiloOptions { DataFolder = dataFolder, Devices = ["cpu"], DataRoots = RaeTestSiloConfigurator.TestDataRoots };
        RaeSiloHost.AddFileGrainStorage(siloBuilder, options);
        RaeSiloHost.ConfigureRaeSilo(siloBuilder, options);
        siloBuilder.Configure<SiloMessagingOptions>(messaging => messaging.ResponseTimeout = TimeSpan.FromMinutes(3));
    }
}

[CollectionDefinition(Name)]
public sealed class FileSystemStorageClusterCollection : ICollectionFixture<FileSystemStorageCluster>
{
    public const string Name = "one-silo cluster on a file-system blob store";
}

[CollectionDefinition(Name)]
public sealed class AzuriteStorageClusterCollection : ICollectionFixture<AzuriteStorageCluster>
{
    public const string Name = "one-silo cluster on an Azurite blob store";
}
