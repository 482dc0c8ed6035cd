using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using RAE.Grains.Storage;
using RAE.Silo;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>Which blob store (and so which checkpoint store) a silo gets from its configuration.</summary>
public sealed class SiloBlobStoreConfigurationTests
{
    private static IBlobStore? Resolve(RaeSiloOptions options, Dictionary<string, string?> settings)
    {
        var services = new ServiceCollection().AddLogging();
        RaeSiloHost.AddConfiguredBlobStore(services, new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), options);
        return services.BuildServiceProvider().GetService<IBlobStore>();
    }

    [Fact]
    public void StorageSectionNamesTheStore()
    {
        var root = Path.Combine(Path.GetTempPath(), "rae-configured-" + Guid.NewGuid().ToString("N")[..8]);
        var store = Resolve(new RaeSiloOptions(), new() { ["Storage:Provider"] = "FileSystem", ["Storage:FileSystem:RootPath"] = root });
        Assert.Equal(Path.GetFullPath(root), Assert.IsType<FileSystemBlobStore>(store).RootPath);
    }

    [Fact]
    public void AzureModeDefaultsToAzureBlobOnTheClusterAccount()
    {
        var options = new RaeSiloOptions { ClusterMode = RaeClusterMode.Azure, StorageConnectionString = AzureBlobStoreOptions.AzuriteConnectionString() };
        var store = Resolve(options, new() { ["Storage:Azure:ContainerName"] = "rae-shared" });
        Assert.Contains("'rae-shared'", Assert.IsType<AzureBlobStore>(store).Location);
    }

    [Fact]
    public void EmbeddedModeLeavesTheDataFolderStoreToTheSilo()
    {
        Assert.Null(Resolve(new RaeSiloOptions(), []));
    }
}
