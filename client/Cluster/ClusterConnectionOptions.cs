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

    /// <summary>
    /// Gateways to try (ignored when <see cref="StorageConnectionString"/> is set). A static list works in cluster mode as
    /// well, with the cluster's ids: a client then needs no storage credentials at all.
    /// </summary>
    public IReadOnlyList<IPEndPoint> Gateways { get; init; } = [new(IPAddress.Loopback, DefaultGatewayPort)];

    /// <summary>Azure Storage connection string of the membership table; set means cluster (Azure) mode.</summary>
    public string? StorageConnectionString { get; init; }

    public string ClusterId { get; init; } = "rae";
    public string ServiceId { get; init; } = "rae";

    /// <summary>Azure Table of the membership (the silos' Rae:Silo:MembershipTable); null means Orleans' default table.</summary>
    public string? MembershipTable { get; init; }

    /// <summary>The client's certificate (PKCS#12 with its private key); set means mutual TLS with the gateways.</summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>The certificate's password (from RAE_TLS_CERTIFICATE_PASSWORD or the file of --tls-password-file, never an option).</summary>
    public string? TlsCertificatePassword { get; init; }

    /// <summary>The cluster's authority: the gateways must show a certificate it issued.</summary>
    public string? TlsAuthorityPath { get; init; }

    public bool UsesTls => TlsCertificatePath is not null;

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
        options = WithTls(options, arguments, environment);
        var timeout = arguments.ConnectTimeoutSeconds ?? options.ConnectTimeout.TotalSeconds;
        if (!(timeout > 0) || double.IsInfinity(timeout)) throw new UsageException($"--connect-timeout must be a positive number of seconds, got {timeout}");
        return options with { ConnectTimeout = TimeSpan.FromSeconds(timeout) };
    }

    /// <summary>--tls-certificate, --tls-authority and --tls-password-file (and their RAE_ variables); a password only from the environment or a file.</summary>
    private static ClusterConnectionOptions WithTls(ClusterConnectionOptions options, ClusterConnectionArguments arguments, Func<string, string?> environment)
    {
        var certificate = arguments.TlsCertificate ?? environment("RAE_TLS_CERTIFICATE");
        var authority = arguments.TlsAuthority ?? environment("RAE_TLS_AUTHORITY");
        var passwordFile = arguments.TlsPasswordFile ?? environment("RAE_TLS_CERTIFICATE_PASSWORD_FILE");
        if (string.IsNullOrWhiteSpace(certificate))
        {
            if (!string.IsNullOrWhiteSpace(authority) || !string.IsNullOrWhiteSpace(passwordFile))
                throw new UsageException("--tls-authority and --tls-password-file need --tls-certificate (env RAE_TLS_CERTIFICATE): the client's certificate");
            return options;
        }
        if (string.IsNullOrWhiteSpace(authority))
            throw new UsageException("--tls-certificate needs --tls-authority (env RAE_TLS_AUTHORITY): the cluster authority that issued the gateways' certificates");
        string? password = environment("RAE_TLS_CERTIFICATE_PASSWORD");
        if (!string.IsNullOrWhiteSpace(passwordFile))
        {
            if (!File.Exists(passwordFile)) throw new UsageException($"--tls-password-file '{passwordFile}' does not exist");
            password = File.ReadAllText(passwordFile).Trim();
        }
        return options with { TlsCertificatePath = certificate, TlsAuthorityPath = authority, TlsCertificatePassword = password };
    }

    /// <summary>"30000", "127.0.0.1:30000", "host:30000" or several separated by commas.</summary>
    public static IReadOnlyList<IPEndPoint> ParseGateways(string text)
    {
        var gateways = new List<IPEndPoint>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535)
                gateways.Add(new IPEndPoint(IPAddress.Loopback, port));
            else if (IPEndPoint.TryParse(part, out var endpoint) && endpoint.Port is >= 1 and <= 65535)
                gateways.Add(endpoint);
            else if (HostGateway(part) is { } resolved)
                gateways.Add(resolved);
            else
                throw new UsageException($"--gateway expects PORT, ADDRESS:PORT or HOST:PORT (comma-separated for several), got '{part}'");
        }
        return gateways.Count > 0 ? gateways : throw new UsageException("--gateway names no gateway");
    }

    /// <summary>HOST:PORT with a host name that resolves; null when the text is not of that form or the name does not resolve.</summary>
    private static IPEndPoint? HostGateway(string text)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            return null;
        var host = text[..colon];
        if (Uri.CheckHostName(host) != UriHostNameType.Dns) return null;
        try
        {
            var address = Dns.GetHostAddresses(host).OrderBy(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault();
            return address is null ? null : new IPEndPoint(address, port);
        }
        catch (System.Net.Sockets.SocketException)
        {
            return null;
        }
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
    string? Gateway = null, string? Storage = null, string? ClusterId = null, string? ServiceId = null, string? MembershipTable = null, double? ConnectTimeoutSeconds = null,
    string? TlsCertificate = null, string? TlsAuthority = null, string? TlsPasswordFile = null);
