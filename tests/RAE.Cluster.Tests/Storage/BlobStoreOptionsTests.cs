using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Storage;

public sealed class BlobStoreOptionsTests
{
    [Fact]
    public void Azure_options_name_every_bad_setting()
    {
        var failure = Assert.Throws<OptionsValidationException>(() => new AzureBlobStore(new AzureBlobStoreOptions
        {
            ConnectionString = "this is not a connection string",
            ContainerName = "Bad_Container",
            BlockSizeBytes = 10,
        }));

        Assert.Contains(failure.Failures, f => f.Contains("Storage:Azure:ConnectionString"));
        Assert.Contains(failure.Failures, f => f.Contains("Storage:Azure:ContainerName 'Bad_Container'"));
        Assert.Contains(failure.Failures, f => f.Contains("Storage:Azure:BlockSizeBytes"));
        Assert.Equal(3, failure.Failures.Count());
    }

    [Fact]
    public void Azure_connection_string_problems_never_echo_the_account_key()
    {
        var failure = Assert.Throws<OptionsValidationException>(() => new AzureBlobStore(new AzureBlobStoreOptions
        {
            ConnectionString = "AccountName=x;AccountKey=c2VjcmV0;Nonsense",
        }));

        Assert.DoesNotContain("c2VjcmV0", failure.Message);
    }

    [Fact]
    public void Empty_settings_are_named()
    {
        var azure = Assert.Throws<OptionsValidationException>(() => new AzureBlobStore(new AzureBlobStoreOptions()));
        var fileSystem = Assert.Throws<OptionsValidationException>(() => new FileSystemBlobStore(new FileSystemBlobStoreOptions
        {
            Retry = new BlobStoreRetryOptions { MaxAttempts = 0 },
        }));

        Assert.Contains(azure.Failures, f => f.Contains("Storage:Azure:ConnectionString is empty"));
        Assert.Contains(fileSystem.Failures, f => f.Contains("Storage:FileSystem:RootPath is empty"));
        Assert.Contains(fileSystem.Failures, f => f.Contains("Storage:FileSystem:Retry:MaxAttempts"));
    }

    [Fact]
    public void Development_storage_and_explicit_azurite_connection_strings_are_accepted()
    {
        var development = new AzureBlobStore(new AzureBlobStoreOptions { ConnectionString = "UseDevelopmentStorage=true" });
        var explicitPort = new AzureBlobStore(new AzureBlobStoreOptions
        {
            ConnectionString = AzureBlobStoreOptions.AzuriteConnectionString("127.0.0.1", 10123),
            ContainerName = "jobs-1",
        });

        Assert.Contains("http://127.0.0.1:10000/devstoreaccount1", development.Location);
        Assert.Contains("http://127.0.0.1:10123/devstoreaccount1", explicitPort.Location);
        Assert.DoesNotContain("AccountKey", explicitPort.Location);
    }

    [Fact]
    public void Configuration_selects_the_back_end_and_validates_it_by_name()
    {
        var root = Path.Combine(Path.GetTempPath(), "rae-options-tests", Guid.NewGuid().ToString("N"));
        var fileSystem = Provider(new() { ["Storage:Provider"] = "FileSystem", ["Storage:FileSystem:RootPath"] = root });
        var badAzure = Provider(new() { ["Storage:Provider"] = "Azure", ["Storage:Azure:ConnectionString"] = "UseDevelopmentStorage=true", ["Storage:Azure:ContainerName"] = "x" });

        Assert.IsType<FileSystemBlobStore>(fileSystem.GetRequiredService<IBlobStore>());
        var failure = Assert.Throws<OptionsValidationException>(() => badAzure.GetRequiredService<IOptions<AzureBlobStoreOptions>>().Value);
        Assert.Contains("Storage:Azure:ContainerName 'x'", failure.Message);
        var unknown = Assert.Throws<OptionsValidationException>(() => Provider(new() { ["Storage:Provider"] = "S3" }));
        Assert.Contains("Storage:Provider is 'S3'", unknown.Message);
    }

    [Fact]
    public async Task Host_start_fails_when_the_store_is_unusable()
    {
        var file = Path.GetTempFileName();
        try
        {
            var services = Provider(new() { ["Storage:Provider"] = "FileSystem", ["Storage:FileSystem:RootPath"] = Path.Combine(file, "store") });
            var check = services.GetServices<IHostedService>().OfType<BlobStoreStartupCheck>().Single();

            var failure = await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => check.StartAsync(CancellationToken.None));

            Assert.Contains(Path.Combine(file, "store"), failure.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton(typeof(Microsoft.Extensions.Logging.ILogger<>), typeof(NullLogger<>));
        services.AddBlobStore(configuration);
        return services.BuildServiceProvider();
    }
}
