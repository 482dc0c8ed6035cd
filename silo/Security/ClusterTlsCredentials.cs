using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Orleans.Connections.Security;

namespace RAE.Silo.Security;

/// <summary>
/// This process's certificate (a PKCS#12 file with its private key) and the cluster's authority (the certificate that
/// signs every silo and client certificate). Mutual TLS: every connection, silo to silo and client to gateway, must show
/// a certificate issued by the authority, checked during the handshake, before Orleans reads a single message. So a
/// client without such a certificate never reaches a grain, whatever it writes into RequestContext.
/// </summary>
public sealed class ClusterTlsCredentials : IDisposable
{
    private ClusterTlsCredentials(X509Certificate2 certificate, X509Certificate2 authority)
    {
        Certificate = certificate;
        Authority = authority;
    }

    public X509Certificate2 Certificate { get; }

    public X509Certificate2 Authority { get; }

    /// <summary>
    /// Loads the PKCS#12 certificate (which must hold its private key) and the authority (PEM or DER).
    /// <see cref="InvalidDataException"/> names the file that cannot be used, never the password.
    /// </summary>
    public static ClusterTlsCredentials Load(string certificatePath, string? password, string authorityPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(certificatePath);
        ArgumentException.ThrowIfNullOrWhiteSpace(authorityPath);
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password, X509KeyStorageFlags.EphemeralKeySet);
        }
        catch (Exception error) when (error is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"TLS certificate '{certificatePath}' cannot be read as a PKCS#12 (.pfx) file with the given password: {error.Message}", error);
        }
        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new InvalidDataException($"TLS certificate '{certificatePath}' holds no private key.");
        }
        X509Certificate2 authority;
        try
        {
            authority = X509CertificateLoader.LoadCertificateFromFile(authorityPath);
        }
        catch (Exception error) when (error is CryptographicException or IOException or UnauthorizedAccessException)
        {
            certificate.Dispose();
            throw new InvalidDataException($"TLS authority '{authorityPath}' cannot be read as a PEM or DER certificate: {error.Message}", error);
        }
        var credentials = new ClusterTlsCredentials(certificate, authority);
        if (!credentials.IsIssuedByAuthority(certificate))
        {
            var problem = $"TLS certificate '{certificatePath}' ({certificate.Subject}) is not issued by the authority '{authorityPath}' ({authority.Subject}).";
            credentials.Dispose();
            throw new InvalidDataException(problem);
        }
        return credentials;
    }

    /// <summary>
    /// Credentials from certificates already loaded (it owns them from now on), without checking that the certificate is
    /// the authority's: the peer checks that during the handshake. <see cref="Load"/> is the way for configured files.
    /// </summary>
    public static ClusterTlsCredentials FromCertificates(X509Certificate2 certificate, X509Certificate2 authority)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(authority);
        return new ClusterTlsCredentials(certificate, authority);
    }

    /// <summary>Settings of a silo: its certificate, and a certificate of the authority required from every silo and client.</summary>
    public void ConfigureSilo(TlsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ConfigureCommon(options);
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
    }

    /// <summary>Settings of a client: its certificate for the gateway, and a certificate of the authority required from the gateway.</summary>
    public void ConfigureClient(TlsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ConfigureCommon(options);
    }

    private void ConfigureCommon(TlsOptions options)
    {
        options.LocalCertificate = Certificate;
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.CheckCertificateRevocation = false;
        options.RemoteCertificateValidation = (certificate, _, _) => IsIssuedByAuthority(certificate);
        // Silos are reached by address and clients connect to whatever gateway list they were given; the name in the
        // certificate is not what proves membership, the authority's signature is (checked above).
        options.OnAuthenticateAsClient = (_, client) => client.TargetHost = "rae-cluster";
    }

    /// <summary>
    /// True when <paramref name="certificate"/> chains to the authority and to nothing else (the system's trusted roots
    /// do not count), within its validity period.
    /// </summary>
    public bool IsIssuedByAuthority(X509Certificate2? certificate)
    {
        if (certificate is null) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        return chain.Build(certificate)
            && chain.ChainElements[^1].Certificate.RawDataMemory.Span.SequenceEqual(Authority.RawDataMemory.Span);
    }

    public void Dispose()
    {
        Certificate.Dispose();
        Authority.Dispose();
    }
}
