using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace RAE.Grains.Storage;

/// <summary>
/// Registers one <see cref="IBlobStore"/> with validated options (bad settings stop the host at start, each named)
/// and a start-up check that fails the host quickly with the reason when storage is unreachable.
/// Configuration: "Storage:Provider" = "FileSystem" | "Azure", with "Storage:FileSystem:*" or "Storage:Azure:*".
/// </summary>
public static class BlobStoreServiceCollectionExtensions
{
    public const string ProviderKey = "Storage:Provider";

    public static IServiceCollection AddBlobStore(this IServiceCollection services, IConfiguration configuration)
    {
        var provider = configuration[ProviderKey];
        return provider?.ToLowerInvariant() switch
        {
            "filesystem" => services.AddFileSystemBlobStore(o => configuration.GetSection(FileSystemBlobStoreOptions.SectionName).Bind(o)),
            "azure" => services.AddAzureBlobStore(o => configuration.GetSection(AzureBlobStoreOptions.SectionName).Bind(o)),
            _ => throw new OptionsValidationException(ProviderKey, typeof(IBlobStore),
                [$"{ProviderKey} is '{provider}': expected 'FileSystem' or 'Azure'"]),
        };
    }

    public static IServiceCollection AddFileSystemBlobStore(this IServiceCollection services, Action<FileSystemBlobStoreOptions> configure)
    {
        services.AddOptions<FileSystemBlobStoreOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FileSystemBlobStoreOptions>, FileSystemBlobStoreOptionsValidator>());
        services.AddSingleton<IBlobStore>(sp => new FileSystemBlobStore(
            sp.GetRequiredService<IOptions<FileSystemBlobStoreOptions>>().Value, sp.GetService<ILogger<FileSystemBlobStore>>()));
        return services.AddBlobStoreStartupCheck();
    }

    public static IServiceCollection AddAzureBlobStore(this IServiceCollection services, Action<AzureBlobStoreOptions> configure)
    {
        services.AddOptions<AzureBlobStoreOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AzureBlobStoreOptions>, AzureBlobStoreOptionsValidator>());
        services.AddSingleton<IBlobStore>(sp => new AzureBlobStore(
            sp.GetRequiredService<IOptions<AzureBlobStoreOptions>>().Value, sp.GetService<ILogger<AzureBlobStore>>()));
        return services.AddBlobStoreStartupCheck();
    }

    private static IServiceCollection AddBlobStoreStartupCheck(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, BlobStoreStartupCheck>());
        return services;
    }
}

/// <summary>Runs <see cref="IBlobStore.EnsureAvailableAsync"/> when the host starts, so an unreachable store stops
/// the silo at once with a <see cref="BlobStoreUnavailableException"/> rather than failing the first job.</summary>
public sealed class BlobStoreStartupCheck(IBlobStore store, ILogger<BlobStoreStartupCheck> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await store.EnsureAvailableAsync(cancellationToken).ConfigureAwait(false);
        logger.LogInformation("Blob storage ready: {Location}", store.Location);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
