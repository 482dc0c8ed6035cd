namespace RAE.Silo.Web;

/// <summary>
/// Which job ids the web port accepts in a URL: 1..128 letters, digits, '-', '_' and '.', not starting with '.' and
/// without "..", so an id is safe in a path, a blob name and a page before anything looks it up.
/// </summary>
public static class JobIds
{
    public const int MaxLength = 128;

    /// <summary>Null when <paramref name="jobId"/> is usable, else what is wrong with it (without repeating it).</summary>
    public static string? Problem(string? jobId)
    {
        if (string.IsNullOrEmpty(jobId)) return "the job id is empty";
        if (jobId.Length > MaxLength) return $"the job id is {jobId.Length} characters long (at most {MaxLength})";
        if (!jobId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            return "the job id may hold only letters, digits, '-', '_' and '.'";
        if (jobId.StartsWith('.') || jobId.Contains("..", StringComparison.Ordinal))
            return "the job id may not start with '.' or contain '..'";
        return null;
    }

    public static bool IsValid(string? jobId) => Problem(jobId) is null;
}
