using Orleans.Configuration;

namespace RAE.Silo;

/// <summary>
/// Failure-detection settings of the Orleans membership protocol, bound from "Rae:Silo:Membership". Orleans' defaults
/// take about a minute to declare a killed silo dead; a local or test cluster sets these to detect it in seconds.
/// Every unset value keeps Orleans' default.
/// </summary>
public sealed class RaeMembershipOptions
{
    /// <summary>How long one liveness probe may go unanswered.</summary>
    public double? ProbeTimeoutSeconds { get; set; }

    /// <summary>Missed probes after which a silo votes the probed silo dead.</summary>
    public int? NumMissedProbesLimit { get; set; }

    /// <summary>How many silos each silo probes.</summary>
    public int? NumProbedSilos { get; set; }

    /// <summary>Votes needed to declare a silo dead (at most <see cref="NumProbedSilos"/>).</summary>
    public int? NumVotesForDeathDeclaration { get; set; }

    /// <summary>How long a death vote counts.</summary>
    public double? DeathVoteExpirationTimeoutSeconds { get; set; }

    /// <summary>How often each silo re-reads the membership table.</summary>
    public double? TableRefreshTimeoutSeconds { get; set; }

    /// <summary>How often each silo writes its heartbeat into the membership table.</summary>
    public double? IAmAliveTablePublishTimeoutSeconds { get; set; }

    /// <summary>Whether a silo that feels unhealthy itself (for example a saturated CPU) waits longer before voting.</summary>
    public bool? ExtendProbeTimeoutDuringDegradation { get; set; }

    public bool IsEmpty => ProbeTimeoutSeconds is null && NumMissedProbesLimit is null && NumProbedSilos is null
        && NumVotesForDeathDeclaration is null && DeathVoteExpirationTimeoutSeconds is null && TableRefreshTimeoutSeconds is null
        && IAmAliveTablePublishTimeoutSeconds is null && ExtendProbeTimeoutDuringDegradation is null;

    /// <summary>Copies every set value onto Orleans' options.</summary>
    public void ApplyTo(ClusterMembershipOptions membership)
    {
        if (ProbeTimeoutSeconds is { } probe) membership.ProbeTimeout = TimeSpan.FromSeconds(probe);
        if (NumMissedProbesLimit is { } missed) membership.NumMissedProbesLimit = missed;
        if (NumProbedSilos is { } probed) membership.NumProbedSilos = probed;
        if (NumVotesForDeathDeclaration is { } votes) membership.NumVotesForDeathDeclaration = votes;
        if (DeathVoteExpirationTimeoutSeconds is { } expiry) membership.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(expiry);
        if (TableRefreshTimeoutSeconds is { } refresh) membership.TableRefreshTimeout = TimeSpan.FromSeconds(refresh);
        if (IAmAliveTablePublishTimeoutSeconds is { } alive) membership.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(alive);
        if (ExtendProbeTimeoutDuringDegradation is { } extend) membership.ExtendProbeTimeoutDuringDegradation = extend;
    }

    internal static IEnumerable<string> Check(RaeMembershipOptions? options, string prefix)
    {
        if (options is null) yield break;
        foreach (var (name, seconds) in new[]
        {
            (nameof(ProbeTimeoutSeconds), options.ProbeTimeoutSeconds),
            (nameof(DeathVoteExpirationTimeoutSeconds), options.DeathVoteExpirationTimeoutSeconds),
            (nameof(TableRefreshTimeoutSeconds), options.TableRefreshTimeoutSeconds),
            (nameof(IAmAliveTablePublishTimeoutSeconds), options.IAmAliveTablePublishTimeoutSeconds),
        })
        {
            if (seconds is { } value && !(value is > 0 and <= 86_400))
                yield return $"{prefix}{name} {value} is outside (0, 86400] seconds.";
        }
        foreach (var (name, count) in new[]
        {
            (nameof(NumMissedProbesLimit), options.NumMissedProbesLimit),
            (nameof(NumProbedSilos), options.NumProbedSilos),
            (nameof(NumVotesForDeathDeclaration), options.NumVotesForDeathDeclaration),
        })
        {
            if (count is { } value && value is < 1 or > 100)
                yield return $"{prefix}{name} {value} is outside 1..100.";
        }
        if (options.NumVotesForDeathDeclaration is { } votes && options.NumProbedSilos is { } probed && votes > probed)
            yield return $"{prefix}NumVotesForDeathDeclaration ({votes}) exceeds NumProbedSilos ({probed}); no silo could ever be declared dead.";
    }
}

/// <summary>Azure Storage naming rules, checked before start-up so a bad name is reported by its setting.</summary>
internal static class AzureNames
{
    public static bool IsTableName(string name) =>
        name.Length is >= 3 and <= 63 && char.IsAsciiLetter(name[0]) && name.All(char.IsAsciiLetterOrDigit);

    public static bool IsContainerName(string name) =>
        name.Length is >= 3 and <= 63
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
        && name[0] != '-' && name[^1] != '-' && !name.Contains("--", StringComparison.Ordinal);
}
