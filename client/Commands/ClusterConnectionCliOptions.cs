using System.CommandLine;
using RAE.Client.Cluster;

namespace RAE.Client.Commands;

/// <summary>The options every cluster command shares to find the cluster; unset ones fall back to RAE_ environment variables.</summary>
public sealed class ClusterConnectionCliOptions
{
    public Option<string> Gateway { get; } = new("--gateway")
    {
        HelpName = "PORT|HOST:PORT[,...]",
        Description = $"Gateway(s) of an embedded-mode cluster (env RAE_GATEWAY) [default: 127.0.0.1:{ClusterConnectionOptions.DefaultGatewayPort}]",
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

    public IEnumerable<Option> All => [Gateway, Storage, ClusterId, ServiceId, MembershipTable, ConnectTimeout];

    /// <summary>Options win over RAE_ environment variables, which win over the defaults; <see cref="UsageException"/> for bad values.</summary>
    public ClusterConnectionOptions Read(ParseResult parsed, Func<string, string?>? environment = null) =>
        ClusterConnectionOptions.FromArguments(
            new ClusterConnectionArguments(parsed.GetValue(Gateway), parsed.GetValue(Storage), parsed.GetValue(ClusterId), parsed.GetValue(ServiceId),
                parsed.GetValue(MembershipTable), parsed.GetValue(ConnectTimeout)),
            environment);
}
