using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using RAE.GrainInterfaces;

namespace RAE.Grains.Collectives.Ring;

/// <summary>
/// Mutual TLS for ring connections, with the cluster's certificates: each rank shows its silo certificate, and a peer is
/// accepted only when <see cref="IsTrustedPeer"/> (the cluster authority's chain check) accepts the certificate it
/// shows. The handshake comes first, so the group token and every gradient byte travel encrypted, and a peer with a
/// foreign certificate never gets to present a token. Host names are not checked: ranks reach each other by address,
/// and the authority's signature, not a name, is what proves membership (as for silo-to-silo TLS).
/// </summary>
public sealed class RingTls
{
    private const string TargetHost = "rae-ring";

    /// <param name="certificate">This silo's certificate, with its private key (it serves as client and server certificate).</param>
    /// <param name="isTrustedPeer">True when a peer's certificate is issued by the cluster authority.</param>
    public RingTls(X509Certificate2 certificate, Func<X509Certificate2?, bool> isTrustedPeer)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(isTrustedPeer);
        if (!certificate.HasPrivateKey) throw new ArgumentException($"The ring's TLS certificate ({certificate.Subject}) holds no private key.", nameof(certificate));
        Certificate = certificate;
        IsTrustedPeer = isTrustedPeer;
    }

    public X509Certificate2 Certificate { get; }

    /// <summary>
    /// Ring TLS from certificates given as bytes (the bench's probe): this rank's PKCS#12 with its key and the authority
    /// (DER or PEM) every peer's certificate must chain to.
    /// </summary>
    public static RingTls FromMaterial(RingTlsMaterial material)
    {
        ArgumentNullException.ThrowIfNull(material);
        var certificate = X509CertificateLoader.LoadPkcs12(material.Pkcs12, material.Password, X509KeyStorageFlags.EphemeralKeySet);
        var authority = X509CertificateLoader.LoadCertificate(material.Authority);
        return new RingTls(certificate, presented => IsIssuedBy(presented, authority));
    }

    /// <summary>True when <paramref name="certificate"/> chains to <paramref name="authority"/> alone (system roots do not count).</summary>
    public static bool IsIssuedBy(X509Certificate2? certificate, X509Certificate2 authority)
    {
        if (certificate is null) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate) && chain.ChainElements[^1].Certificate.RawDataMemory.Span.SequenceEqual(authority.RawDataMemory.Span);
    }

    public Func<X509Certificate2?, bool> IsTrustedPeer { get; }

    /// <summary>The connecting side's handshake on a connected socket; the stream owns the socket. A refused or silent
    /// peer is an <see cref="AuthenticationException"/> that says so.</summary>
    public Stream AuthenticateAsClient(Socket socket, TimeSpan timeout) => Authenticate(socket, timeout, (stream, cancel) =>
        stream.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = TargetHost,
            ClientCertificates = [Certificate],
            LocalCertificateSelectionCallback = (_, _, _, _, _) => Certificate,
            RemoteCertificateValidationCallback = Validate,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        }, cancel));

    /// <summary>The listening side's handshake on an accepted socket: the peer must show a trusted certificate.</summary>
    public Stream AuthenticateAsServer(Socket socket, TimeSpan timeout) => Authenticate(socket, timeout, (stream, cancel) =>
        stream.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificate = Certificate,
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = Validate,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        }, cancel));

    // The platform's policy errors (name mismatch, the authority not being a system root) are expected; the authority check decides.
    private bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
        certificate is X509Certificate2 presented && IsTrustedPeer(presented);

    private static SslStream Authenticate(Socket socket, TimeSpan timeout, Func<SslStream, CancellationToken, Task> handshake)
    {
        var stream = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        try
        {
            using var deadline = new CancellationTokenSource(timeout);
            handshake(stream, deadline.Token).GetAwaiter().GetResult();
            return stream;
        }
        catch (OperationCanceledException error)
        {
            stream.Dispose();
            throw new AuthenticationException($"the TLS handshake did not finish within {timeout.TotalSeconds:0.#} s", error);
        }
        catch (Exception error) when (error is AuthenticationException or IOException)
        {
            stream.Dispose();
            throw new AuthenticationException($"the TLS handshake failed (a peer without a certificate of this cluster's authority?): {error.Message}", error);
        }
    }
}
