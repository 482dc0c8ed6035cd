using System.CommandLine;
using RAE.Client.Cluster;

namespace RAE.Client.Commands;

/// <summary>The options every cluster command shares to find the cluster; unset ones fall back to RAE_ environment variables.</summary>
public sealed class ClusterConnectionCliOptions
{
    public Option<string> Gateway { get; } = new("--gateway")
    {
        HelpName = "PORT|HOST:PORT[,...]",
        Description = $"Gateway(s) of the cluster, embedded or cluster mode; needs no storage credentials (env RAE_GATEWAY) [default: 127.0.0.1:{ClusterConnectionOptions.DefaultGatewayPort}]",
    };

    // --azure is the name cluster-core gave the same option.
    public Option<string> Storage { get; } = new("--storage", "--azure")
    {
        HelpName = "CONNECTION-STRING",
        Description = "Azure Storage connection string of the membership table; set means cluster (Azure) mode (env RAE_STORAGE_CONNECTION)",
    };

    public Option<string> ClusterId { get; } = new("--cluster-id") { HelpName = "ID", Description = "Orleans cluster id (env RAE_CLUSTER_ID) [default: rae]" };

    public Option<string> ServiceId { get; } = new("--service-id") { HelpName = "ID", Description = "Orleans service id (env RAE_SERVICE_ID) [default: rae]" };

    public Option<string> MembershipTable { get; } = new("--membership-table")
    {
        HelpName = "TABLE",
        Description = "Azure Table of the membership (env RAE_MEMBERSHIP_TABLE) [default: Orleans' table]",
    };

    public Option<double> ConnectTimeout { get; } = new("--connect-timeout")
    {
        HelpName = "SECONDS",
        Description = "How long connecting may take before the cluster counts as unreachable",
        DefaultValueFactory = _ => new ClusterConnectionOptions().ConnectTimeout.TotalSeconds,
    };

    public Option<string> TlsCertificate { get; } = new("--tls-certificate")
    {
        HelpName = "PFX",
        Description = "The client's certificate (PKCS#12, issued by the cluster's authority) for mutual TLS with the gateways (env RAE_TLS_CERTIFICATE); its password comes from env RAE_TLS_CERTIFICATE_PASSWORD or --tls-password-file",
    };

    public Option<string> TlsAuthority { get; } = new("--tls-authority")
    {
        HelpName = "CRT",
        Description = "The cluster's authority certificate (PEM or DER) the gateways' certificates must chain to (env RAE_TLS_AUTHORITY)",
    };

    public Option<string> TlsPasswordFile { get; } = new("--tls-password-file")
    {
        HelpName = "FILE",
        Description = "A file holding the password of --tls-certificate (env RAE_TLS_CERTIFICATE_PASSWORD_FILE)",
    };

    public IEnumerable<Option> All => [Gateway, Storage, ClusterId, ServiceId, MembershipTable, ConnectTimeout, TlsCertificate, TlsAuthority, TlsPasswordFile];

    /// <summary>Options win over RAE_ environment variables, which win over the defaults; <see cref="UsageException"/> for bad values.</summary>
    public ClusterConnectionOptions Read(ParseResult parsed, Func<string, string?>? environment = null) =>
        ClusterConnectionOptions.FromArguments(
            new ClusterConnectionArguments(parsed.GetValue(Gateway), parsed.GetValue(Storage), parsed.GetValue(ClusterId), parsed.GetValue(ServiceId),
                parsed.GetValue(MembershipTable), parsed.GetValue(ConnectTimeout), parsed.GetValue(TlsCertificate), parsed.GetValue(TlsAuthority),
                parsed.GetValue(TlsPasswordFile)),
            environment);
}
