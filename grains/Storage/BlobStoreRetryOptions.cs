namespace RAE.Grains.Storage;

/// <summary>Bounded retries for transient failures: attempt n waits
/// min(<see cref="InitialBackoff"/> * 2^(n-1), <see cref="MaxBackoff"/>) with ±20 % jitter before trying again.</summary>
public sealed record BlobStoreRetryOptions
{
    public int MaxAttempts { get; set; } = 4;

    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(5);

    internal IEnumerable<string> Problems(string section)
    {
        if (MaxAttempts is < 1 or > 20) yield return $"{section}:Retry:MaxAttempts must be within 1..20 (was {MaxAttempts})";
        if (InitialBackoff < TimeSpan.Zero) yield return $"{section}:Retry:InitialBackoff must not be negative (was {InitialBackoff})";
        if (MaxBackoff < InitialBackoff)
            yield return $"{section}:Retry:MaxBackoff ({MaxBackoff}) must be at least InitialBackoff ({InitialBackoff})";
    }

    internal TimeSpan BackoffBefore(int nextAttempt)
    {
        var exponential = InitialBackoff.TotalMilliseconds * Math.Pow(2, nextAttempt - 2);
        var capped = Math.Min(exponential, MaxBackoff.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (0.8 + 0.4 * Random.Shared.NextDouble()));
    }
}
