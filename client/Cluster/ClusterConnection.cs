using System.Net;
using Azure.Data.Tables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using RAE.Client.Commands;

namespace RAE.Client.Cluster;

/// <summary>
/// An Orleans client connected to an RAE cluster. Options: --gateway host:port (embedded silo, default
/// 127.0.0.1:30000) or --azure "connection string" (Azure Table clustering), --cluster-id / --service-id (default "rae").
/// </summary>
public sealed class ClusterConnection : IAsyncDisposable
{
    private readonly IHost _host;

    private ClusterConnection(IHost host) => _host = host;

    public IClusterClient Client => _host.Services.GetRequiredService<IClusterClient>();

    /// <summary>The options every cluster command reads; call before <see cref="CommandArguments.RejectUnknownOptions"/>.</summary>
    public sealed record Settings(string? Gateway, string? AzureConnectionString, string ClusterId, string ServiceId)
    {
        public static Settings Read(CommandArguments arguments) => new(
            arguments.Option("gateway"),
            arguments.Option("azure"),
            arguments.Option("cluster-id") ?? "rae",
            arguments.Option("service-id") ?? "rae");
    }

    public static async Task<ClusterConnection> ConnectAsync(Settings settings, CancellationToken cancellationToken)
    {
        if (settings.Gateway is not null && settings.AzureConnectionString is not null)
            throw new UsageException("give either --gateway or --azure, not both");
        var gateway = settings.AzureConnectionString is null ? ParseGateway(settings.Gateway ?? "127.0.0.1:30000") : null;
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(cluster =>
            {
                cluster.ClusterId = settings.ClusterId;
                cluster.ServiceId = settings.ServiceId;
            });
            if (gateway is not null) client.UseStaticClustering(gateway);
            else client.UseAzureStorageClustering(table => table.TableServiceClient = new TableServiceClient(settings.AzureConnectionString));
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken);
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            host.Dispose();
            throw new ClusterUnreachableException($"cannot connect to the cluster ({(gateway is not null ? $"gateway {gateway}" : "Azure Table clustering")}, cluster id '{settings.ClusterId}'): {error.Message}", error);
        }
        return new ClusterConnection(host);
    }

    private static IPEndPoint ParseGateway(string text)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new UsageException($"--gateway expects host:port, got '{text}'");
        var host = text[..colon].Trim('[', ']');
        if (!IPAddress.TryParse(host, out var address))
        {
            address = host == "localhost" ? IPAddress.Loopback
                : Dns.GetHostAddresses(host).FirstOrDefault() ?? throw new UsageException($"--gateway host '{host}' does not resolve");
        }
        return new IPEndPoint(address, port);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            _host.Dispose();
        }
    }
}

public sealed class ClusterUnreachableException(string message, Exception inner) : Exception(message, inner);
