using System.Net;
using Microsoft.Extensions.Options;
using RAE.Silo.Web;

namespace RAE.Silo;

public enum RaeClusterMode
{
    /// <summary>One machine, no external service: localhost clustering, grain state on the local file system.</summary>
    Embedded,

    /// <summary>Azure Table clustering and Azure Blob grain state (Azurite locally), so several silo processes form one cluster.</summary>
    Azure,
}

/// <summary>Every setting of one RAE silo, bound from the "Rae:Silo" configuration section.</summary>
public sealed class RaeSiloOptions
{
    public const string SectionName = "Rae:Silo";

    /// <summary>Root of everything the silo keeps on disk in embedded mode (grain state, checkpoints).</summary>
    public string DataFolder { get; set; } = "rae-data";

    /// <summary>Address the silo and gateway ports listen on; loopback unless configured otherwise (the web port has its own, <see cref="Web"/>).</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    public int SiloPort { get; set; } = 11111;
    public int GatewayPort { get; set; } = 30000;
    public int WebPort { get; set; } = 8080;

    /// <summary>Silo port of the primary silo in embedded mode (localhost clustering); defaults to this silo's port.</summary>
    public int? PrimarySiloPort { get; set; }

    public RaeClusterMode ClusterMode { get; set; } = RaeClusterMode.Embedded;

    /// <summary>Azure Storage connection string, required in Azure mode (for Azurite: "UseDevelopmentStorage=true").</summary>
    public string? StorageConnectionString { get; set; }

    public string ClusterId { get; set; } = "rae";
    public string ServiceId { get; set; } = "rae";

    /// <summary>Azure Table that holds the membership in Azure mode; unset means Orleans' default ("OrleansSiloInstances").</summary>
    public string? MembershipTable { get; set; }

    /// <summary>Blob container of the grain state in Azure mode; unset means Orleans' default ("grainstate").</summary>
    public string? GrainStateContainer { get; set; }

    /// <summary>How fast the cluster declares a silo dead; every unset value keeps Orleans' default.</summary>
    public RaeMembershipOptions Membership { get; set; } = new();

    /// <summary>The web port's address and access token.</summary>
    public RaeWebOptions Web { get; set; } = new();

    /// <summary>
    /// Compute devices this silo offers; one rank grain runs per device ("cpu", "cuda", "cuda:0"). Unset means ["cpu"]
    /// (the default is applied after binding because the configuration binder appends to a non-empty array).
    /// </summary>
    public string[] Devices { get; set; } = [];

    /// <summary>
    /// The only folders a job may name files in (checkpoints, decoders, statistics, configs); a path outside them is
    /// refused without saying whether it exists. Unset means the data folder alone.
    /// </summary>
    public string[] DataRoots { get; set; } = [];

    public void ApplyDefaults(Microsoft.Extensions.Configuration.IConfiguration section)
    {
        if (!section.GetSection(nameof(Devices)).GetChildren().Any()) Devices = ["cpu"];
    }

    /// <summary>The configured data roots, or the data folder when none is configured.</summary>
    public IReadOnlyList<string> EffectiveDataRoots => DataRoots is { Length: > 0 } ? DataRoots : [DataFolder];

    /// <summary>Mutual TLS of the silo and gateway ports (on by default in Azure mode).</summary>
    public Security.RaeTlsOptions Tls { get; set; } = new();

    /// <summary>Intra-op threads each rank's worker may use.</summary>
    public int ThreadsPerRank { get; set; } = 1;

    /// <summary>Gradient transport between ranks: Ring (direct TCP between rank workers, the default) or Orleans (through the group grain).</summary>
    public RAE.GrainInterfaces.CollectiveTransport Collective { get; set; } = RAE.GrainInterfaces.CollectiveTransport.Ring;

    /// <summary>All-reduce finished gradients while backward still runs (<c>Rae:Silo:OverlapGradients</c>, default true).</summary>
    public bool OverlapGradients { get; set; } = true;
}

/// <summary>Rejects a bad setting with a message naming the setting and its value.</summary>
public sealed class RaeSiloOptionsValidator : IValidateOptions<RaeSiloOptions>
{
    public ValidateOptionsResult Validate(string? name, RaeSiloOptions options)
    {
        var failures = Check(options).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Throws <see cref="OptionsValidationException"/> listing every bad setting.</summary>
    public static void ThrowIfInvalid(RaeSiloOptions options)
    {
        var failures = Check(options).ToList();
        if (failures.Count > 0)
            throw new OptionsValidationException(RaeSiloOptions.SectionName, typeof(RaeSiloOptions), failures);
    }

    private static IEnumerable<string> Check(RaeSiloOptions options)
    {
        const string prefix = RaeSiloOptions.SectionName + ":";
        if (string.IsNullOrWhiteSpace(options.DataFolder))
            yield return $"{prefix}DataFolder must name a folder; it is empty.";
        if (!IPAddress.TryParse(options.BindAddress, out _))
            yield return $"{prefix}BindAddress '{options.BindAddress}' is not an IP address.";
        foreach (var (name, port) in new[] { ("SiloPort", options.SiloPort), ("GatewayPort", options.GatewayPort), ("WebPort", options.WebPort) })
        {
            if (port is < 1 or > 65535)
                yield return $"{prefix}{name} {port} is outside 1..65535.";
        }
        if (options.PrimarySiloPort is { } primary && primary is < 1 or > 65535)
            yield return $"{prefix}PrimarySiloPort {primary} is outside 1..65535.";
        var distinct = new[] { options.SiloPort, options.GatewayPort, options.WebPort }.Distinct().Count();
        if (distinct != 3)
            yield return $"{prefix}SiloPort ({options.SiloPort}), GatewayPort ({options.GatewayPort}) and WebPort ({options.WebPort}) must differ.";
        if (!Enum.IsDefined(options.ClusterMode))
            yield return $"{prefix}ClusterMode '{options.ClusterMode}' is unknown; use Embedded or Azure.";
        if (options.ClusterMode == RaeClusterMode.Azure && string.IsNullOrWhiteSpace(options.StorageConnectionString))
            yield return $"{prefix}StorageConnectionString is required when ClusterMode is Azure.";
        if (string.IsNullOrWhiteSpace(options.ClusterId))
            yield return $"{prefix}ClusterId is empty.";
        if (string.IsNullOrWhiteSpace(options.ServiceId))
            yield return $"{prefix}ServiceId is empty.";
        if (options.Devices is null || options.Devices.Length == 0)
            yield return $"{prefix}Devices is empty; declare at least one device, for example [\"cpu\"].";
        else
        {
            foreach (var device in options.Devices)
            {
                if (!IsDeviceName(device))
                    yield return $"{prefix}Devices entry '{device}' is not a device; use \"cpu\", \"cuda\" or \"cuda:N\".";
            }
            var duplicate = options.Devices.GroupBy(d => d, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
                yield return $"{prefix}Devices lists '{duplicate.Key}' more than once.";
        }
        foreach (var root in options.DataRoots ?? [])
        {
            if (string.IsNullOrWhiteSpace(root))
                yield return $"{prefix}DataRoots has an empty entry; name a folder.";
            else if (root.Contains('\0', StringComparison.Ordinal) || Path.GetFullPath(root) == Path.GetPathRoot(Path.GetFullPath(root)))
                yield return $"{prefix}DataRoots entry '{root}' is a file-system root; name the folders jobs may read.";
        }
        if (options.ThreadsPerRank is < 1 or > 1024)
            yield return $"{prefix}ThreadsPerRank {options.ThreadsPerRank} is outside 1..1024.";
        if (options.MembershipTable is { } table && !AzureNames.IsTableName(table))
            yield return $"{prefix}MembershipTable '{table}' is not an Azure table name (3..63 letters and digits, starting with a letter).";
        if (options.GrainStateContainer is { } container && !AzureNames.IsContainerName(container))
            yield return $"{prefix}GrainStateContainer '{container}' is not a blob container name (3..63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit).";
        foreach (var failure in RaeMembershipOptions.Check(options.Membership, prefix + "Membership:"))
            yield return failure;
        foreach (var failure in RaeWebOptions.Check(options.Web, prefix + "Web:"))
            yield return failure;
        foreach (var failure in Security.RaeTlsOptions.Check(options.Tls, options.ClusterMode, prefix + "Tls:"))
            yield return failure;
    }

    private static bool IsDeviceName(string? device)
    {
        if (device is "cpu" or "cuda") return true;
        return device is not null && device.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(device.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _);
    }
}
