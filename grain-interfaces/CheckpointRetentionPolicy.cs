using System.Globalization;

namespace RAE.GrainInterfaces;

/// <summary>
/// Which committed checkpoints a job keeps. The rules are a union: a checkpoint survives if any rule keeps it, and the
/// newest one always survives (it is the resume point). A rule set to 0 is off.
/// <list type="bullet">
/// <item><see cref="KeepLast"/>: the newest K checkpoints.</item>
/// <item><see cref="KeepEvery"/>: every checkpoint whose step is a multiple of P (permanent milestones).</item>
/// <item><see cref="KeepBest"/>: the B checkpoints with the lowest loss (checkpoints without a loss never qualify;
/// equal losses prefer the newer step).</item>
/// </list>
/// </summary>
[GenerateSerializer, Immutable]
public sealed record CheckpointRetentionPolicy
{
    /// <summary>Job settings that set the rules (the YAML keys training.keep_last / keep_every / keep_best map here).</summary>
    public const string KeepLastSetting = "keep_last_checkpoints";
    public const string KeepEverySetting = "keep_every_steps";
    public const string KeepBestSetting = "keep_best_checkpoints";

    /// <summary>The policy of a job whose settings name none: the newest three.</summary>
    public static CheckpointRetentionPolicy Default { get; } = new() { KeepLast = 3 };

    /// <summary>Keeps every checkpoint.</summary>
    public static CheckpointRetentionPolicy KeepAll { get; } = new() { KeepEvery = 1 };

    [Id(0)] public int KeepLast { get; init; }
    [Id(1)] public long KeepEvery { get; init; }
    [Id(2)] public int KeepBest { get; init; }

    /// <summary>Throws <see cref="RaeJobException"/> naming every negative rule.</summary>
    public CheckpointRetentionPolicy Validate()
    {
        var problems = new List<string>();
        if (KeepLast < 0) problems.Add($"{KeepLastSetting} must be 0 (off) or positive, got {KeepLast}");
        if (KeepEvery < 0) problems.Add($"{KeepEverySetting} must be 0 (off) or positive, got {KeepEvery}");
        if (KeepBest < 0) problems.Add($"{KeepBestSetting} must be 0 (off) or positive, got {KeepBest}");
        return problems.Count == 0 ? this : throw new RaeJobException("Invalid checkpoint retention: " + string.Join("; ", problems) + ".");
    }

    /// <summary>The policy a job's settings describe; <see cref="Default"/> when they name no rule. Throws
    /// <see cref="RaeJobException"/> naming the setting whose value is not a non-negative whole number.</summary>
    public static CheckpointRetentionPolicy FromSettings(IReadOnlyDictionary<string, string> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (!settings.ContainsKey(KeepLastSetting) && !settings.ContainsKey(KeepEverySetting) && !settings.ContainsKey(KeepBestSetting))
            return Default;
        return new CheckpointRetentionPolicy
        {
            KeepLast = (int)Read(settings, KeepLastSetting, int.MaxValue),
            KeepEvery = Read(settings, KeepEverySetting, long.MaxValue),
            KeepBest = (int)Read(settings, KeepBestSetting, int.MaxValue),
        }.Validate();
    }

    /// <summary>The settings that reproduce this policy (the inverse of <see cref="FromSettings"/>).</summary>
    public IReadOnlyDictionary<string, string> ToSettings() => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [KeepLastSetting] = KeepLast.ToString(CultureInfo.InvariantCulture),
        [KeepEverySetting] = KeepEvery.ToString(CultureInfo.InvariantCulture),
        [KeepBestSetting] = KeepBest.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>The steps this policy keeps out of <paramref name="committed"/> (any order; steps are unique).</summary>
    public IReadOnlySet<long> StepsToKeep(IReadOnlyCollection<CheckpointInfo> committed)
    {
        ArgumentNullException.ThrowIfNull(committed);
        Validate();
        var kept = new HashSet<long>();
        if (committed.Count == 0) return kept;
        var newestFirst = committed.OrderByDescending(c => c.Step).ToList();
        kept.Add(newestFirst[0].Step);
        foreach (var c in newestFirst.Take(KeepLast)) kept.Add(c.Step);
        if (KeepEvery > 0)
            foreach (var c in committed.Where(c => c.Step % KeepEvery == 0)) kept.Add(c.Step);
        var best = committed.Where(c => c.Loss is { } loss && double.IsFinite(loss))
            .OrderBy(c => c.Loss!.Value).ThenByDescending(c => c.Step).Take(KeepBest);
        foreach (var c in best) kept.Add(c.Step);
        return kept;
    }

    public override string ToString() =>
        $"keep last {KeepLast}, every {KeepEvery} steps, best {KeepBest} by loss (0 = off; the newest is always kept)";

    private static long Read(IReadOnlyDictionary<string, string> settings, string key, long max)
    {
        if (!settings.TryGetValue(key, out var text)) return 0;
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 0 && value <= max
            ? value
            : throw new RaeJobException($"Invalid checkpoint retention: setting {key} must be 0 (off) or a positive whole number, got '{text}'.");
    }
}
