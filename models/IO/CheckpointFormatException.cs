namespace RAE.Models.IO;

/// <summary>A checkpoint or array file that cannot be read. The message always names the file.</summary>
public sealed class CheckpointFormatException : IOException
{
    public CheckpointFormatException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
    }

    public string FilePath { get; }
}
