namespace RAE.GrainInterfaces;

/// <summary>
/// Which committed checkpoints a job keeps. The rules are a union: a checkpoint survives if any rule keeps it, and the
/// newest one always survives (it is the resume point), and so does the newest one with a finite loss (the last state
/// known to be sound, should the newest have diverged). A rule set to 0 is off.
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
    /// <summary>The policy of a job whose configuration names no rule: the newest three.</summary>
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
        if (KeepLast < 0) problems.Add($"training.keep_last must be 0 (off) or positive, got {KeepLast}");
        if (KeepEvery < 0) problems.Add($"training.keep_every must be 0 (off) or positive, got {KeepEvery}");
        if (KeepBest < 0) problems.Add($"training.keep_best must be 0 (off) or positive, got {KeepBest}");
        return problems.Count == 0 ? this : throw new RaeJobException("Invalid checkpoint retention: " + string.Join("; ", problems) + ".");
    }

    /// <summary>The steps this policy keeps out of <paramref name="committed"/> (any order; steps are unique).</summary>
    public IReadOnlySet<long> StepsToKeep(IReadOnlyCollection<CheckpointInfo> committed)
    {
        ArgumentNullException.ThrowIfNull(committed);
        Validate();
        var kept = new HashSet<long>();
        if (committed.Count == 0) return kept;
        var newestFirst = committed.OrderByDescending(c => c.Step).ToList();
        kept.Add(newestFirst[0].Step);
        if (newestFirst.FirstOrDefault(c => c.Loss is { } loss && double.IsFinite(loss)) is { } lastFinite) kept.Add(lastFinite.Step);
        foreach (var c in newestFirst.Take(KeepLast)) kept.Add(c.Step);
        if (KeepEvery > 0)
            foreach (var c in committed.Where(c => c.Step % KeepEvery == 0)) kept.Add(c.Step);
        var best = committed.Where(c => c.Loss is { } loss && double.IsFinite(loss))
            .OrderBy(c => c.Loss!.Value).ThenByDescending(c => c.Step).Take(KeepBest);
        foreach (var c in best) kept.Add(c.Step);
        return kept;
    }

    public override string ToString() =>
        $"keep last {KeepLast}, every {KeepEvery} steps, best {KeepBest} by loss (0 = off; the newest and the newest with a finite loss are always kept)";
}
