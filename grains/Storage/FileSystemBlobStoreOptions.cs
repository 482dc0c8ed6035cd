using Microsoft.Extensions.Options;

namespace RAE.Grains.Storage;

public sealed record FileSystemBlobStoreOptions
{
    public const string SectionName = "Storage:FileSystem";

    /// <summary>Folder holding the blobs (created if absent); relative paths are resolved against the working folder.</summary>
    public string RootPath { get; set; } = "";

    /// <summary>How long a pointer update waits for another writer's lock before giving up.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Staged temp files older than this (left by killed writers) are removed by EnsureAvailableAsync.</summary>
    public TimeSpan StaleStagingAge { get; set; } = TimeSpan.FromHours(6);

    public BlobStoreRetryOptions Retry { get; set; } = new();
}

public sealed class FileSystemBlobStoreOptionsValidator : IValidateOptions<FileSystemBlobStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, FileSystemBlobStoreOptions options)
    {
        var section = FileSystemBlobStoreOptions.SectionName;
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(options.RootPath))
            problems.Add($"{section}:RootPath is empty: set the folder that holds the blobs");
        else if (options.RootPath.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
            problems.Add($"{section}:RootPath '{options.RootPath}' contains characters not allowed in a path");
        if (options.LockTimeout <= TimeSpan.Zero)
            problems.Add($"{section}:LockTimeout must be positive (was {options.LockTimeout})");
        if (options.StaleStagingAge <= TimeSpan.Zero)
            problems.Add($"{section}:StaleStagingAge must be positive (was {options.StaleStagingAge})");
        if (options.Retry is null) problems.Add($"{section}:Retry is missing");
        else problems.AddRange(options.Retry.Problems(section));
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    internal static void ThrowIfInvalid(FileSystemBlobStoreOptions options)
    {
        var result = new FileSystemBlobStoreOptionsValidator().Validate(null, options);
        if (result.Failed) throw new OptionsValidationException(Options.DefaultName, typeof(FileSystemBlobStoreOptions), result.Failures);
    }
}
