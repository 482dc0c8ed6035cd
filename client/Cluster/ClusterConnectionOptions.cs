using System.Globalization;
using System.Net;
using RAE.Client.Commands;

namespace RAE.Client.Cluster;

/// <summary>
/// How the CLI finds the cluster, mirroring the silo's modes: a loopback (or given) gateway for the embedded silo, or the
/// Azure Table membership of a cluster-mode deployment. Options win over RAE_ environment variables, which win over the
/// defaults (127.0.0.1:30000, cluster and service id "rae").
/// </summary>
public sealed record ClusterConnectionOptions
{
    public const int DefaultGatewayPort = 30000;

    /// <summary>Gateways to try in embedded mode (ignored when <see cref="StorageConnectionString"/> is set).</summary>
    public IReadOnlyList<IPEndPoint> Gateways { get; init; } = [new(IPAddress.Loopback, DefaultGatewayPort)];

    /// <summary>Azure Storage connection string of the membership table; set means cluster (Azure) mode.</summary>
    public string? StorageConnectionString { get; init; }

    public string ClusterId { get; init; } = "rae";
    public string ServiceId { get; init; } = "rae";

    /// <summary>Azure Table of the membership (the silos' Rae:Silo:MembershipTable); null means Orleans' default table.</summary>
    public string? MembershipTable { get; init; }

    /// <summary>How long connecting may take before the cluster counts as unreachable.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public bool IsAzureMode => !string.IsNullOrWhiteSpace(StorageConnectionString);

    /// <summary>What an error message names when no silo answers.</summary>
    public string Describe() => IsAzureMode
        ? $"Azure Table membership{(MembershipTable is null ? "" : $" ('{MembershipTable}')")} of cluster '{ClusterId}' (service '{ServiceId}') in storage '{RedactedStorage()}'"
        : $"gateway {string.Join(", ", Gateways.Select(g => g.ToString()))}";

    /// <summary>Builds the options from --gateway, --storage (alias --azure), --cluster-id, --service-id, --membership-table and --connect-timeout (and their RAE_ variables).</summary>
    public static ClusterConnectionOptions FromArguments(ClusterConnectionArguments arguments, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var options = new ClusterConnectionOptions();
        var gateway = arguments.Gateway ?? environment("RAE_GATEWAY");
        if (gateway is not null) options = options with { Gateways = ParseGateways(gateway) };
        var storage = arguments.Storage ?? environment("RAE_STORAGE_CONNECTION");
        if (!string.IsNullOrWhiteSpace(storage)) options = options with { StorageConnectionString = storage };
        var clusterId = arguments.ClusterId ?? environment("RAE_CLUSTER_ID");
        if (clusterId is not null) options = options with { ClusterId = RequireText(clusterId, "--cluster-id") };
        var serviceId = arguments.ServiceId ?? environment("RAE_SERVICE_ID");
        if (serviceId is not null) options = options with { ServiceId = RequireText(serviceId, "--service-id") };
        var table = arguments.MembershipTable ?? environment("RAE_MEMBERSHIP_TABLE");
        if (table is not null) options = options with { MembershipTable = RequireText(table, "--membership-table") };
        var timeout = arguments.ConnectTimeoutSeconds ?? options.ConnectTimeout.TotalSeconds;
        if (!(timeout > 0) || double.IsInfinity(timeout)) throw new UsageException($"--connect-timeout must be a positive number of seconds, got {timeout}");
        return options with { ConnectTimeout = TimeSpan.FromSeconds(timeout) };
    }

    /// <summary>"30000", "127.0.0.1:30000" or several separated by commas.</summary>
    public static IReadOnlyList<IPEndPoint> ParseGateways(string text)
    {
        var gateways = new List<IPEndPoint>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535)
                gateways.Add(new IPEndPoint(IPAddress.Loopback, port));
            else if (IPEndPoint.TryParse(part, out var endpoint) && endpoint.Port is >= 1 and <= 65535)
                gateways.Add(endpoint);
            else
                throw new UsageException($"--gateway expects PORT or ADDRESS:PORT (comma-separated for several), got '{part}'");
        }
        return gateways.Count > 0 ? gateways : throw new UsageException("--gateway names no gateway");
    }

    private static string RequireText(string value, string option) =>
        string.IsNullOrWhiteSpace(value) ? throw new UsageException($"{option} must not be empty") : value;

    private string RedactedStorage()
    {
        var parts = (StorageConnectionString ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Where(p => !p.StartsWith("AccountKey", StringComparison.OrdinalIgnoreCase) && !p.StartsWith("SharedAccessSignature", StringComparison.OrdinalIgnoreCase));
        return string.Join(';', parts);
    }
}

/// <summary>The connection values given on the command line (null: not given).</summary>
public sealed record ClusterConnectionArguments(
    string? Gateway = null, string? Storage = null, string? ClusterId = null, string? ServiceId = null, string? MembershipTable = null, double? ConnectTimeoutSeconds = null);
