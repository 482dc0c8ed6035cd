using System.Net;
using Azure.Data.Tables;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using RAE.GrainInterfaces;
using RAE.Models.Runtime;
using RAE.Grains;
using RAE.Grains.Checkpoints;
using RAE.Grains.Collectives.Ring;
using RAE.Grains.Datasets;
using RAE.Grains.Placement;
using RAE.Grains.Sampling;
using RAE.Grains.Storage;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage2;
using RAE.Silo.Placement;
using RAE.Silo.Storage;
using RAE.Silo.Web;

namespace RAE.Silo;

/// <summary>Builds an RAE silo: a web host running Orleans with the dashboard, started as a program or in-process.</summary>
public static class RaeSiloHost
{
    /// <summary>
    /// Builds (does not start) the silo's web application. Settings come from appsettings.json, RAE_ environment
    /// variables (e.g. RAE_Rae__Silo__WebPort), the command line (--Rae:Silo:WebPort=8081) and <paramref name="overrides"/>.
    /// A bad setting throws <see cref="OptionsValidationException"/> naming it.
    /// </summary>
    public static WebApplication Build(string[]? args = null, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args ?? [], ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddEnvironmentVariables("RAE_");
        if (args is { Length: > 0 }) builder.Configuration.AddCommandLine(args);
        if (overrides is not null) builder.Configuration.AddInMemoryCollection(overrides);

        RefuseSecretsOnTheCommandLine(args);
        var commandLineSecrets = RaeWebOptions.CheckCommandLine(args ?? []).ToList();
        if (commandLineSecrets.Count > 0)
            throw new OptionsValidationException(RaeSiloOptions.SectionName, typeof(RaeSiloOptions), commandLineSecrets);
        var section = builder.Configuration.GetSection(RaeSiloOptions.SectionName);
        var options = ReadOptions(section);
        var tls = LoadTls(options);
        if (tls is not null) builder.Services.AddSingleton(tls);
        builder.Services.AddSingleton<IValidateOptions<RaeSiloOptions>, RaeSiloOptionsValidator>();
        builder.Services.AddOptions<RaeSiloOptions>().Bind(section).PostConfigure(bound => bound.ApplyDefaults(section)).ValidateOnStart();

        builder.WebHost.UseUrls($"http://{UrlHost(options.Web.BindAddress)}:{options.WebPort}");
        builder.Services.AddSingleton<JobReader>();
        AddConfiguredBlobStore(builder.Services, builder.Configuration, options);
        builder.UseOrleans(silo =>
        {
            ConfigureMembership(silo, options);
            ConfigureRaeSilo(silo, options);
            if (tls is not null)
            {
                silo.UseTls(tls.Certificate, tls.ConfigureSilo);
                // Gradients travel rank to rank outside Orleans' connections: the ring gets the same certificates.
                silo.Services.PostConfigure<RankDeviceOptions>(devices => devices.RingTls = new RingTls(tls.Certificate, tls.IsIssuedByAuthority));
            }
            silo.AddDashboard();
        });

        var app = builder.Build();
        TorchRuntime.Initialise(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(TorchRuntime).FullName!));
        app.UseRaeWebAccess(options.Web);
        app.MapOrleansDashboard(routePrefix: "/dashboard");
        app.MapGet("/", () => Results.Redirect("/dashboard/"));
        app.MapRaeJobApi();
        app.MapRaeJobPages();
        app.MapGet("/api/silo", (IOptions<RaeSiloOptions> silo, ILocalSiloDetails local) =>
            Results.Json(new { silo = local.SiloAddress.ToString(), devices = silo.Value.Devices, threadsPerRank = silo.Value.ThreadsPerRank, mode = silo.Value.ClusterMode.ToString() }, WebJson.Options));
        return app;
    }

    /// <summary>Binds and validates the options; throws <see cref="OptionsValidationException"/> naming every bad setting.</summary>
    public static RaeSiloOptions ReadOptions(IConfiguration section)
    {
        RaeSiloOptions options;
        try
        {
            options = section.Get<RaeSiloOptions>() ?? new RaeSiloOptions();
            options.ApplyDefaults(section);
        }
        catch (InvalidOperationException error)
        {
            throw new OptionsValidationException(RaeSiloOptions.SectionName, typeof(RaeSiloOptions), [$"{error.Message} {error.InnerException?.Message}".Trim()]);
        }
        RaeSiloOptionsValidator.ThrowIfInvalid(options);
        return options;
    }

    /// <summary>
    /// Secrets come from the environment or a file: a process's command line is visible to every user of the machine
    /// (ps, /proc). <see cref="OptionsValidationException"/> names the setting, never its value.
    /// </summary>
    private static void RefuseSecretsOnTheCommandLine(string[]? args)
    {
        string[] secrets = ["ConnectionString", "CertificatePassword"];
        var found = (args ?? []).Select(argument => argument.Split('=', 2)[0].Replace("__", ":", StringComparison.Ordinal))
            .Where(key => secrets.Any(secret => key.EndsWith(secret, StringComparison.OrdinalIgnoreCase)))
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .ToList();
        if (found.Count > 0)
            throw new OptionsValidationException(RaeSiloOptions.SectionName, typeof(RaeSiloOptions),
                found.Select(key => $"{key.TrimStart('-', '/')} was given on the command line, where every user of the machine can read it; set it in the environment (RAE_{key.TrimStart('-', '/').Replace(":", "__", StringComparison.Ordinal)}) or a file instead."));
    }

    /// <summary>The silo's TLS credentials when TLS is on; <see cref="OptionsValidationException"/> when they cannot be loaded.</summary>
    private static Security.ClusterTlsCredentials? LoadTls(RaeSiloOptions options)
    {
        if (!options.Tls.IsEnabled(options.ClusterMode)) return null;
        try
        {
            return options.Tls.LoadCredentials();
        }
        catch (Exception error) when (error is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new OptionsValidationException(RaeSiloOptions.SectionName, typeof(RaeSiloOptions), [$"{RaeSiloOptions.SectionName}:Tls: {error.Message}"]);
        }
    }

    /// <summary>Clustering, endpoints and grain storage for the configured mode.</summary>
    public static void ConfigureMembership(ISiloBuilder silo, RaeSiloOptions options)
    {
        silo.Configure<ClusterOptions>(cluster =>
        {
            cluster.ClusterId = options.ClusterId;
            cluster.ServiceId = options.ServiceId;
        });
        if (options.ClusterMode == RaeClusterMode.Embedded)
        {
            var primary = new IPEndPoint(IPAddress.Loopback, options.PrimarySiloPort ?? options.SiloPort);
            silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, primary, options.ServiceId, options.ClusterId);
            AddFileGrainStorage(silo, options);
        }
        else
        {
            var connection = options.StorageConnectionString!;
            silo.ConfigureEndpoints(IPAddress.Parse(options.BindAddress), options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: false);
            silo.UseAzureStorageClustering(table =>
            {
                table.TableServiceClient = new TableServiceClient(connection);
                if (options.MembershipTable is { } name) table.TableName = name;
            });
            silo.AddAzureBlobGrainStorage(RaeStorage.GrainStateProvider, blob =>
            {
                blob.BlobServiceClient = new Azure.Storage.Blobs.BlobServiceClient(connection);
                if (options.GrainStateContainer is { } container) blob.ContainerName = container;
            });
        }
        if (!options.Membership.IsEmpty) silo.Configure<ClusterMembershipOptions>(options.Membership.ApplyTo);
    }

    /// <summary>
    /// The blob store of checkpoints and sampling output: the "Storage" section when it names a provider; else Azure Blob
    /// on the cluster's storage account in Azure mode (container "rae" unless Storage:Azure:ContainerName says otherwise);
    /// else, in embedded mode, nothing here and <see cref="ConfigureRaeSilo"/> puts a file-system store under the data folder.
    /// </summary>
    public static void AddConfiguredBlobStore(IServiceCollection services, IConfiguration configuration, RaeSiloOptions options)
    {
        if (!string.IsNullOrWhiteSpace(configuration[BlobStoreServiceCollectionExtensions.ProviderKey]))
            services.AddBlobStore(configuration);
        else if (options.ClusterMode == RaeClusterMode.Azure)
        {
            services.AddAzureBlobStore(blob =>
            {
                configuration.GetSection(AzureBlobStoreOptions.SectionName).Bind(blob);
                if (string.IsNullOrWhiteSpace(blob.ConnectionString)) blob.ConnectionString = options.StorageConnectionString!;
            });
        }
    }

    public static void AddFileGrainStorage(ISiloBuilder silo, RaeSiloOptions options)
    {
        var root = Path.Combine(Path.GetFullPath(options.DataFolder), "grain-state");
        silo.Services.AddGrainStorage(RaeStorage.GrainStateProvider, (services, _) => new FileSystemGrainStorage(root, services.GetRequiredService<Serializer>()));
    }

    /// <summary>Everything RAE adds to a silo whatever its membership: placement, devices, workers, checkpoints, job resumption.</summary>
    public static void ConfigureRaeSilo(ISiloBuilder silo, RaeSiloOptions options)
    {
        silo.Services.Configure<RankDeviceOptions>(devices =>
        {
            devices.Devices = options.Devices.ToArray();
            devices.ThreadsPerRank = options.ThreadsPerRank;
            devices.Collective = options.Collective;
            devices.OverlapGradients = options.OverlapGradients;
        });
        silo.Services.AddSingleton(new SiloDataRoots(options.EffectiveDataRoots));
        silo.Services.AddPlacementDirector<SiloBoundPlacement, SiloBoundPlacementDirector>();
        silo.Services.AddSingleton<IRankWorkerFactory, TinyMlpWorkerFactory>();
        silo.Services.AddSingleton<RAE.Grains.Training.SiloTrainingMetrics>();
        silo.Services.AddSingleton<IRankWorkerFactory, DiTRankWorkerFactory>();
        silo.Services.AddSingleton<IRankWorkerFactory, RAE.Grains.Workers.Stage1.DecoderRankWorkerFactory>();
        silo.Services.AddHostedService<JobResumeService>();
        // The blob store configured for the silo (file system under the data folder unless one was registered before):
        // checkpoints live there, so every silo of the cluster reads what any silo wrote.
        silo.Services.AddRaeSampling(Path.Combine(Path.GetFullPath(options.DataFolder), "blobs"));
        silo.Services.AddSingleton<ICheckpointPayloadStore>(services => new BlobCheckpointPayloadStore(services.GetRequiredService<IBlobStore>()));
        // Latent shards are cached on this silo's disk, named by their SHA-256 (so silos sharing a data folder share the files).
        silo.Services.AddSingleton(new LatentCacheOptions { Directory = Path.Combine(Path.GetFullPath(options.DataFolder), "latent-cache") });
        silo.Services.AddSingleton<LatentTrainingData>();
    }

    private static string UrlHost(string address) =>
        IPAddress.Parse(address).AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address;
}
