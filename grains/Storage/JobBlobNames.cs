using RAE.GrainInterfaces;

namespace RAE.Grains.Storage;

/// <summary>
/// The one check of a job id before a grain derives a blob name from it: one path segment under the shared
/// <see cref="BlobPath"/> rules, so "samples/{job}" or "checkpoints/{job}/" can never reach into another job's area.
/// </summary>
public static class JobBlobNames
{
    public const int MaxJobIdLength = 200;

    /// <summary>The job id itself; <see cref="RaeJobException"/> naming the problem when it cannot name a blob folder.</summary>
    public static string RequireJobId(string? jobId)
    {
        if (string.IsNullOrWhiteSpace(jobId)) throw new RaeJobException("The job id is empty.");
        if (jobId.Length > MaxJobIdLength) throw new RaeJobException($"Job id '{jobId[..40]}...' is {jobId.Length} characters long (at most {MaxJobIdLength}).");
        if (jobId.Contains('/', StringComparison.Ordinal))
            throw new RaeJobException($"Job id '{jobId}' cannot name a blob folder: it contains '/'.");
        try
        {
            BlobPath.Validate(jobId, nameof(jobId));
        }
        catch (ArgumentException error)
        {
            throw new RaeJobException($"Job id '{jobId}' cannot name a blob folder: {error.Message}.", error);
        }
        return jobId;
    }

    /// <summary>True when <paramref name="path"/> is a valid blob path of one entry directly in <paramref name="folder"/> (which ends with '/').</summary>
    public static bool IsEntryOf(string path, string folder)
    {
        if (!path.StartsWith(folder, StringComparison.Ordinal) || path.Length == folder.Length) return false;
        if (path.AsSpan(folder.Length).Contains('/')) return false;
        try
        {
            BlobPath.Validate(path);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
