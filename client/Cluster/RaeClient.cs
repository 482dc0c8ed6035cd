using System.Net.Sockets;
using Azure.Data.Tables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Runtime.Messaging;
using RAE.GrainInterfaces;
using RAE.Silo.Security;

namespace RAE.Client.Cluster;

/// <summary>No silo answered: names what was tried. The CLI maps it to exit code 3.</summary>
public sealed class ClusterUnreachableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The client's TLS certificate or authority cannot be used; a usage problem (exit code 2), not an unreachable cluster.</summary>
public sealed class ClusterTlsException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// What the CLI asks of the cluster, over any <see cref="IGrainFactory"/>: a connected <see cref="IClusterClient"/>
/// (<see cref="ConnectAsync"/>) or the grain factory of an in-process silo (`rae demo`).
/// </summary>
public sealed class RaeClient : IAsyncDisposable
{
    private readonly IHost? _host;

    public RaeClient(IGrainFactory grains, IHost? ownedHost = null)
    {
        Grains = grains;
        _host = ownedHost;
    }

    public IGrainFactory Grains { get; }

    private IJobRegistryGrain Registry => Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    /// <summary>Connects, failing fast with <see cref="ClusterUnreachableException"/> naming the gateway or membership table.</summary>
    public static async Task<RaeClient> ConnectAsync(ClusterConnectionOptions options, CancellationToken cancellationToken = default)
    {
        if (!options.IsAzureMode) await ProbeGatewaysAsync(options, cancellationToken);
        var tls = LoadTls(options);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(cluster =>
            {
                cluster.ClusterId = options.ClusterId;
                cluster.ServiceId = options.ServiceId;
            });
            if (options.IsAzureMode)
                client.UseAzureStorageClustering(table =>
                {
                    table.TableServiceClient = new TableServiceClient(options.StorageConnectionString);
                    if (options.MembershipTable is { } name) table.TableName = name;
                });
            else
                client.UseStaticClustering(options.Gateways.ToArray());
            if (tls is not null) client.UseTls(tls.Certificate, tls.ConfigureClient);
        });
        if (tls is not null) builder.Services.AddSingleton(tls);
        var host = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            await host.StartAsync(timeout.Token);
            var client = new RaeClient(host.Services.GetRequiredService<IClusterClient>(), host);
            // A gateway that accepts the connection is not enough: the registry must answer too.
            await client.Registry.List(afterJobId: null, limit: 1).WaitAsync(timeout.Token);
            return client;
        }
        catch (Exception error) when (IsUnreachable(error) || (error is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            await DisposeQuietly(host);
            var why = error is OperationCanceledException ? $"no answer within {options.ConnectTimeout.TotalSeconds:0.#} s" : error.GetBaseException().Message;
            var tlsHint = options.UsesTls ? "" : " A cluster with mutual TLS (the default in cluster mode) answers only clients with a certificate of its authority (--tls-certificate, --tls-authority).";
            throw new ClusterUnreachableException($"No RAE silo answers at the {options.Describe()}: {why}. Start one with 'infra/cluster.sh up 1' or the silo project, or point --gateway/--storage at a running cluster.{tlsHint}", error);
        }
        catch
        {
            await DisposeQuietly(host);
            throw;
        }
    }

    /// <summary>The client's TLS credentials when a certificate is configured; <see cref="ClusterUnreachableException"/> naming the file that cannot be used.</summary>
    private static ClusterTlsCredentials? LoadTls(ClusterConnectionOptions options)
    {
        if (!options.UsesTls) return null;
        try
        {
            return ClusterTlsCredentials.Load(options.TlsCertificatePath!, options.TlsCertificatePassword, options.TlsAuthorityPath!);
        }
        catch (InvalidDataException error)
        {
            throw new ClusterTlsException(error.Message, error);
        }
    }

    /// <summary>
    /// The Orleans client keeps retrying a gateway that refuses connections until the call times out; a plain TCP
    /// connect tells within a moment whether anything listens at all.
    /// </summary>
    private static async Task ProbeGatewaysAsync(ClusterConnectionOptions options, CancellationToken cancellationToken)
    {
        var failures = new List<string>();
        foreach (var gateway in options.Gateways)
        {
            using var socket = new Socket(gateway.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(Math.Min(3, options.ConnectTimeout.TotalSeconds)));
            try
            {
                await socket.ConnectAsync(gateway, timeout.Token);
                return;
            }
            catch (SocketException error)
            {
                failures.Add($"{gateway}: {error.SocketErrorCode}");
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                failures.Add($"{gateway}: no answer");
            }
        }
        throw new ClusterUnreachableException($"No RAE silo answers at the {options.Describe()} ({string.Join("; ", failures)}). Start one with 'infra/cluster.sh up 1' or 'rae demo', or point --gateway/--storage at a running cluster.");
    }

    /// <summary>Errors that mean the cluster cannot be reached (as opposed to a request it refused).</summary>
    public static bool IsUnreachable(Exception error) => error switch
    {
        ClusterUnreachableException or ConnectionFailedException or SiloUnavailableException or SocketException or TimeoutException => true,
        // A gateway that refused this client's certificate (or showed one the client does not trust).
        System.Security.Authentication.AuthenticationException => true,
        OrleansMessageRejectionException => true,
        Azure.RequestFailedException => true,
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsUnreachable),
        OrleansException orleans => orleans.InnerException is not null ? IsUnreachable(orleans.InnerException) : orleans.Message.Contains("gateway", StringComparison.OrdinalIgnoreCase),
        _ => error.InnerException is not null && IsUnreachable(error.InnerException),
    };

    public async Task<ClusterStatusReport> GetClusterStatusAsync()
    {
        var management = Grains.GetGrain<IManagementGrain>(0);
        var hosts = await management.GetDetailedHosts(onlyActive: true);
        var addresses = hosts.Select(h => h.SiloAddress).ToArray();
        var statistics = addresses.Length == 0 ? [] : await management.GetRuntimeStatistics(addresses);
        var jobs = await Registry.ListUnfinished();
        var busy = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var job in jobs.Where(j => j.Kind == JobKind.Training && j.State is JobState.Pending or JobState.Running or JobState.Recovering))
        {
            var status = await Grains.GetGrain<ITrainingCoordinatorGrain>(job.JobId).GetStatus();
            foreach (var slot in status.Ranks) busy[slot.RankGrainKey] = job.JobId;
        }
        var silos = new List<SiloStatus>();
        for (var i = 0; i < hosts.Length; i++)
        {
            var host = hosts[i];
            var compute = await Grains.GetGrain<ISiloAgentGrain>(SiloBoundKey.Agent(host.SiloAddress)).GetComputeInfo();
            var ranks = compute.Devices
                .Select(device => SiloBoundKey.Rank(host.SiloAddress, device))
                .Select(key => new RankStatus(key, SiloBoundKey.Parse(key).Suffix["rank:".Length..], busy.GetValueOrDefault(key)))
                .ToList();
            var stats = i < statistics.Length ? statistics[i] : null;
            silos.Add(new SiloStatus(
                host.SiloAddress.ToString(), host.SiloName, host.HostName, host.Status.ToString(), host.StartTime,
                compute.Devices, compute.ThreadsPerRank, ranks,
                stats?.EnvironmentStatistics.FilteredCpuUsagePercentage, stats?.EnvironmentStatistics.FilteredMemoryUsageBytes, stats?.ActivationCount ?? 0));
        }
        var workloads = await Registry.GetWorkloads();
        var scheduled = await Grains.GetGrain<IDeviceSchedulerGrain>(IDeviceSchedulerGrain.DefaultKey).Snapshot();
        return new ClusterStatusReport(silos, jobs.Count, workloads, scheduled.Queue);
    }

    public Task<string> SubmitTrainingAsync(TrainingJobSpec spec) => Registry.SubmitTraining(spec);

    /// <summary>Starts a training job under a chosen id (the registry learns it from the coordinator's first report).</summary>
    public async Task<string> SubmitTrainingAsync(TrainingJobSpec spec, string jobId)
    {
        await Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).Start(spec);
        return jobId;
    }

    public Task<IReadOnlyList<JobSummary>> ListJobsAsync() => Registry.List();

    /// <summary>At most <paramref name="limit"/> jobs after <paramref name="afterJobId"/> (null: from the oldest), oldest first.</summary>
    public Task<IReadOnlyList<JobSummary>> ListJobsAsync(string? afterJobId, int limit) => Registry.List(afterJobId, limit);

    /// <summary>A latent dataset's manifest summary, read by the cluster (<see cref="RaeJobException"/> when unknown).</summary>
    public Task<LatentDatasetInfo> DescribeLatentDatasetAsync(string name) => Grains.GetGrain<ILatentDatasetInfoGrain>(name).Describe();

    /// <summary>The job's summary; <see cref="RaeJobException"/> naming the id when neither the registry nor a sampling grain knows it.</summary>
    public async Task<JobSummary> GetJobAsync(string jobId)
    {
        try
        {
            return await Registry.Get(jobId);
        }
        catch (RaeJobException)
        {
            // Sampling jobs are started on their own grain; the registry knows them only once that grain reports.
            if (await TryGetSamplingStatusAsync(jobId) is { } sampling)
                return new JobSummary(jobId, JobKind.Sampling, sampling.State, sampling.UnitsDone, sampling.UnitsTotal, default, default, sampling.FailureReason);
            throw;
        }
    }

    public Task<TrainingJobStatus> GetTrainingStatusAsync(string jobId) => Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetStatus();

    public Task<IReadOnlyList<StepMetrics>> GetMetricsAsync(string jobId, long fromStep) => Grains.GetGrain<ITrainingCoordinatorGrain>(jobId).GetMetrics(fromStep);

    public async Task CancelAsync(string jobId)
    {
        var job = await GetJobAsync(jobId);
        if (job.Kind == JobKind.Sampling) await SamplingGrain(jobId).Cancel();
        else await Registry.Cancel(jobId);
    }

    /// <summary>Submits through the registry, which starts the job's grain (it checks dataset, name and configuration) and lists it.</summary>
    public Task<string> SubmitEncodingAsync(EncodeJobSpec spec) => Registry.SubmitEncoding(spec);

    public Task<EncodeJobStatus> GetEncodeStatusAsync(string jobId) => Grains.GetGrain<IEncodeJobGrain>(jobId).GetStatus();

    /// <summary>Submits through the registry, which validates, starts and lists the job; under a chosen id when one is given.</summary>
    public Task<string> StartSamplingAsync(SamplingJobSpec spec, string? jobId = null) =>
        jobId is null ? Registry.SubmitSampling(spec) : Registry.SubmitSamplingAs(jobId, spec);

    public Task<IReadOnlyList<WorkloadOffer>> GetWorkloadsAsync() => Registry.GetWorkloads();

    public Task<SamplingJobStatus> GetSamplingStatusAsync(string jobId) => SamplingGrain(jobId).GetStatus();

    /// <summary>The sampling job's grain; <see cref="RaeJobException"/> when no silo of the cluster implements sampling jobs.</summary>
    private ISamplingJobGrain SamplingGrain(string jobId)
    {
        try
        {
            return Grains.GetGrain<ISamplingJobGrain>(jobId);
        }
        catch (ArgumentException error) when (error.Message.Contains("implementation", StringComparison.OrdinalIgnoreCase))
        {
            throw new RaeJobException($"This cluster cannot run sampling jobs: no silo implements {nameof(ISamplingJobGrain)} ({error.Message}).", error);
        }
    }

    /// <summary>Null when no sampling job of that id was started (a fresh grain reports no spec or id).</summary>
    public async Task<SamplingJobStatus?> TryGetSamplingStatusAsync(string jobId)
    {
        try
        {
            var status = await GetSamplingStatusAsync(jobId);
            return string.IsNullOrEmpty(status.JobId) || status.UnitsTotal == 0 && status.State == JobState.Pending ? null : status;
        }
        catch (RaeJobException)
        {
            // Unknown job, or a cluster without sampling jobs at all: either way no such sampling job.
            return null;
        }
    }

    public async Task<IReadOnlyList<CheckpointInfo>> ListCheckpointsAsync(string jobId) =>
        await Grains.GetGrain<ICheckpointStoreGrain>(jobId).List();

    public async Task<CheckpointInfo> GetCheckpointAsync(string jobId, long? step)
    {
        var store = Grains.GetGrain<ICheckpointStoreGrain>(jobId);
        return step is { } wanted ? await store.Get(wanted)
            : await store.Latest() ?? throw new RaeJobException($"Job '{jobId}' has no committed checkpoint.");
    }

    /// <summary>Streams a committed checkpoint's verified payload from the cluster into <paramref name="destination"/>.</summary>
    public Task<long> DownloadCheckpointAsync(CheckpointInfo checkpoint, Stream destination, CancellationToken cancellationToken = default) =>
        CheckpointDownloader.DownloadAsync(Grains, checkpoint, destination, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_host is not null) await DisposeQuietly(_host);
    }

    private static async Task DisposeQuietly(IHost host)
    {
        try
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await host.StopAsync(stop.Token);
        }
        catch (Exception error) when (error is OperationCanceledException or OrleansException or ObjectDisposedException or SocketException)
        {
            // Stopping a client whose gateway is gone; nothing to release but the host itself.
        }
        host.Dispose();
    }
}

public sealed record RankStatus(string Key, string Device, string? BusyWithJob);

public sealed record SiloStatus(
    string Address, string Name, string HostName, string Status, DateTime StartedAt,
    IReadOnlyList<string> Devices, int ThreadsPerRank, IReadOnlyList<RankStatus> Ranks,
    float? CpuUsagePercent, long? MemoryUsageBytes, int Activations);

/// <summary>The cluster as `rae cluster status` shows it; <paramref name="Queue"/>: training jobs waiting for devices, next first.</summary>
public sealed record ClusterStatusReport(IReadOnlyList<SiloStatus> Silos, int ActiveJobs, IReadOnlyList<WorkloadOffer> Workloads, IReadOnlyList<QueuedJob> Queue);
