namespace RAE.Silo.Security;

/// <summary>
/// Mutual TLS of the silo and gateway ports, bound from "Rae:Silo:Tls". On by default in cluster (Azure) mode, off by
/// default for the embedded single-machine silo. The password of the certificate comes from a file
/// (<see cref="CertificatePasswordFile"/>) or the environment (RAE_Rae__Silo__Tls__CertificatePassword), never from the
/// command line: <see cref="RaeSiloHost.Build"/> refuses it there.
/// </summary>
public sealed class RaeTlsOptions
{
    public const string SectionName = "Tls";

    /// <summary>Null: on in Azure mode, off in embedded mode.</summary>
    public bool? Enabled { get; set; }

    /// <summary>This silo's certificate with its private key, a PKCS#12 (.pfx) file issued by <see cref="AuthorityPath"/>.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>A file holding the certificate's password (surrounding white space ignored).</summary>
    public string? CertificatePasswordFile { get; set; }

    /// <summary>The certificate's password, from the environment only.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>The cluster's authority (PEM or DER): every silo and client must show a certificate it issued.</summary>
    public string? AuthorityPath { get; set; }

    public bool IsEnabled(RaeClusterMode mode) => Enabled ?? mode == RaeClusterMode.Azure;

    /// <summary>The password: the file's content when a file is named, else <see cref="CertificatePassword"/> (may be null: no password).</summary>
    public string? ReadPassword() =>
        CertificatePasswordFile is { } file ? File.ReadAllText(file).Trim() : CertificatePassword;

    public ClusterTlsCredentials LoadCredentials() => ClusterTlsCredentials.Load(CertificatePath!, ReadPassword(), AuthorityPath!);

    internal static IEnumerable<string> Check(RaeTlsOptions? options, RaeClusterMode mode, string prefix)
    {
        if (options is null || !options.IsEnabled(mode)) yield break;
        var why = options.Enabled is null ? " (TLS is on by default in Azure mode; set Rae:Silo:Tls:Enabled=false only for a cluster on a trusted network)" : "";
        if (string.IsNullOrWhiteSpace(options.CertificatePath))
            yield return $"{prefix}CertificatePath is required when TLS is on{why}.";
        else if (!File.Exists(options.CertificatePath))
            yield return $"{prefix}CertificatePath '{options.CertificatePath}' does not exist.";
        if (string.IsNullOrWhiteSpace(options.AuthorityPath))
            yield return $"{prefix}AuthorityPath is required when TLS is on{why}.";
        else if (!File.Exists(options.AuthorityPath))
            yield return $"{prefix}AuthorityPath '{options.AuthorityPath}' does not exist.";
        if (options.CertificatePasswordFile is { } file && !File.Exists(file))
            yield return $"{prefix}CertificatePasswordFile '{file}' does not exist.";
        if (options.CertificatePasswordFile is not null && options.CertificatePassword is not null)
            yield return $"{prefix}CertificatePasswordFile and CertificatePassword are both set; keep one.";
    }
}
