using System.Text.RegularExpressions;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;

namespace RAE.Grains.Storage;

public sealed record AzureBlobStoreOptions
{
    public const string SectionName = "Storage:Azure";

    /// <summary>Well-known Azurite account (public development credentials, not a secret).</summary>
    public const string DevelopmentStorageConnectionString = "UseDevelopmentStorage=true";

    /// <summary>An account connection string; "UseDevelopmentStorage=true" means Azurite on 127.0.0.1:10000.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>Created at start-up if absent. 3-63 lower-case letters, digits and single hyphens.</summary>
    public string ContainerName { get; set; } = "rae";

    /// <summary>Large puts are staged in blocks of this size (64 KiB .. 100 MiB), then committed in one request.</summary>
    public int BlockSizeBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Blocks staged in parallel; memory in flight is about BlockSizeBytes * (this + 1).</summary>
    public int MaxConcurrentBlockUploads { get; set; } = 4;

    /// <summary>Limit for one request (one block, one commit, one download).</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>EnsureAvailableAsync gives up after this long when the endpoint does not answer.</summary>
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Pins the REST API version; null uses the client's newest (Azurite then needs --skipApiVersionCheck).</summary>
    public BlobClientOptions.ServiceVersion? ServiceVersion { get; set; }

    public BlobStoreRetryOptions Retry { get; set; } = new();

    /// <summary>Explicit Azurite connection string for a non-default host or port.</summary>
    public static string AzuriteConnectionString(string host = "127.0.0.1", int blobPort = 10000) =>
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        + "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        + $"BlobEndpoint=http://{host}:{blobPort}/devstoreaccount1;";
}

public sealed partial class AzureBlobStoreOptionsValidator : IValidateOptions<AzureBlobStoreOptions>
{
    public const int MinBlockSize = 64 * 1024;
    public const int MaxBlockSize = 100 * 1024 * 1024;

    public ValidateOptionsResult Validate(string? name, AzureBlobStoreOptions options)
    {
        var section = AzureBlobStoreOptions.SectionName;
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            problems.Add($"{section}:ConnectionString is empty: use '{AzureBlobStoreOptions.DevelopmentStorageConnectionString}' "
                + "for Azurite or the storage account's connection string");
        }
        else
        {
            try
            {
                _ = new BlobServiceClient(options.ConnectionString);
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException or UriFormatException)
            {
                // The parser's message does not echo the string, which may hold an account key.
                problems.Add($"{section}:ConnectionString is not a valid Azure Storage connection string ({ex.Message})");
            }
        }

        if (options.ContainerName is null || !ContainerNamePattern().IsMatch(options.ContainerName))
        {
            problems.Add($"{section}:ContainerName '{options.ContainerName}' is not a valid container name "
                + "(3-63 characters: lower-case letters, digits and single hyphens, starting and ending with a letter or digit)");
        }

        if (options.BlockSizeBytes is < MinBlockSize or > MaxBlockSize)
            problems.Add($"{section}:BlockSizeBytes must be within {MinBlockSize}..{MaxBlockSize} (was {options.BlockSizeBytes})");
        if (options.MaxConcurrentBlockUploads is < 1 or > 64)
            problems.Add($"{section}:MaxConcurrentBlockUploads must be within 1..64 (was {options.MaxConcurrentBlockUploads})");
        if (options.RequestTimeout <= TimeSpan.Zero)
            problems.Add($"{section}:RequestTimeout must be positive (was {options.RequestTimeout})");
        if (options.StartupTimeout <= TimeSpan.Zero)
            problems.Add($"{section}:StartupTimeout must be positive (was {options.StartupTimeout})");
        if (options.Retry is null) problems.Add($"{section}:Retry is missing");
        else problems.AddRange(options.Retry.Problems(section));
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    internal static void ThrowIfInvalid(AzureBlobStoreOptions options)
    {
        var result = new AzureBlobStoreOptionsValidator().Validate(null, options);
        if (result.Failed) throw new OptionsValidationException(Options.DefaultName, typeof(AzureBlobStoreOptions), result.Failures);
    }

    [GeneratedRegex("^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")]
    private static partial Regex ContainerNamePattern();
}
