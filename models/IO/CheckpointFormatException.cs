namespace RAE.Models.IO;

/// <summary>A checkpoint or array file that cannot be read. The message always names the file.</summary>
public sealed class CheckpointFormatException : IOException
{
    public CheckpointFormatException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
    }

    private CheckpointFormatException(string filePath, string limit, object limitValue, string problem)
        : base($"{filePath}: {problem} (limit ReaderLimits.{limit} = {limitValue})")
    {
        FilePath = filePath;
        Limit = limit;
    }

    public string FilePath { get; }

    /// <summary>The <see cref="ReaderLimits"/> property the file broke, or null for any other format problem.</summary>
    public string? Limit { get; }

    /// <summary>A file that breaks one of the <see cref="ReaderLimits"/>; <paramref name="limit"/> is the property name.</summary>
    public static CheckpointFormatException LimitExceeded(string filePath, string limit, object limitValue, string problem) =>
        new(filePath, limit, limitValue, problem);
}
