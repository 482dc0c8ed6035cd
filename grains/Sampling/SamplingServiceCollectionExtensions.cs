using Microsoft.Extensions.DependencyInjection;
using RAE.Grains.Storage;

namespace RAE.Grains.Sampling;

public static class SamplingServiceCollectionExtensions
{
    /// <summary>
    /// What sampling jobs need on a silo: a blob store for their results. A store registered before (Azure or file system,
    /// from "Storage:*" settings) is kept; otherwise the file-system store under <paramref name="defaultBlobRoot"/> is used.
    /// </summary>
    public static IServiceCollection AddRaeSampling(this IServiceCollection services, string defaultBlobRoot)
    {
        if (services.Any(descriptor => descriptor.ServiceType == typeof(IBlobStore))) return services;
        return services.AddFileSystemBlobStore(options => options.RootPath = defaultBlobRoot);
    }
}
