using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RAE.Silo.Security;

/// <summary>The files <see cref="DevelopmentCertificates.Create"/> wrote.</summary>
public sealed record DevelopmentCertificateFiles(string AuthorityPath, string SiloCertificatePath, string ClientCertificatePath, string PasswordPath);

/// <summary>
/// A self-signed development authority and two certificates it signs, made with .NET's <see cref="CertificateRequest"/>:
/// one for the silos (server and client authentication: silos connect to each other) and one for CLI clients (client
/// authentication only). The authority's private key is not kept: a new client certificate means a new set. The PKCS#12
/// files share one random password, written to a file readable by the owner only, never printed.
/// </summary>
public static class DevelopmentCertificates
{
    public const string AuthorityFile = "authority.crt";
    public const string SiloFile = "silo.pfx";
    public const string ClientFile = "client.pfx";
    public const string PasswordFile = "certificate.password";

    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthentication = "1.3.6.1.5.5.7.3.2";

    /// <summary>
    /// Writes <see cref="AuthorityFile"/>, <see cref="SiloFile"/>, <see cref="ClientFile"/> and <see cref="PasswordFile"/>
    /// into <paramref name="folder"/> (created when missing). <paramref name="hostNames"/> go into the silo certificate's
    /// subject alternative names besides localhost and the loopback addresses.
    /// </summary>
    public static DevelopmentCertificateFiles Create(string folder, IEnumerable<string>? hostNames = null, TimeSpan? validity = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Directory.CreateDirectory(folder);
        var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = notBefore + (validity ?? TimeSpan.FromDays(365));
        using var authorityKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var authorityRequest = new CertificateRequest("CN=RAE development cluster authority", authorityKey, HashAlgorithmName.SHA256);
        authorityRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        authorityRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        authorityRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(authorityRequest.PublicKey, false));
        using var authority = authorityRequest.CreateSelfSigned(notBefore, notAfter);

        var password = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        var files = new DevelopmentCertificateFiles(
            Path.Combine(folder, AuthorityFile), Path.Combine(folder, SiloFile), Path.Combine(folder, ClientFile), Path.Combine(folder, PasswordFile));
        WriteOwnerOnly(files.PasswordPath, System.Text.Encoding.UTF8.GetBytes(password));
        File.WriteAllText(files.AuthorityPath, authority.ExportCertificatePem() + "\n");

        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        foreach (var host in hostNames ?? [])
        {
            if (IPAddress.TryParse(host, out var address)) names.AddIpAddress(address);
            else names.AddDnsName(host);
        }
        using (var silo = Issue(authority, "CN=rae-silo", [ServerAuthentication, ClientAuthentication], names.Build(), notBefore, notAfter))
            WriteOwnerOnly(files.SiloCertificatePath, silo.Export(X509ContentType.Pkcs12, password));
        using (var client = Issue(authority, "CN=rae-client", [ClientAuthentication], null, notBefore, notAfter))
            WriteOwnerOnly(files.ClientCertificatePath, client.Export(X509ContentType.Pkcs12, password));
        return files;
    }

    /// <summary>A certificate for <paramref name="subject"/> signed by <paramref name="authority"/>, with its new private key.</summary>
    public static X509Certificate2 Issue(X509Certificate2 authority, string subject, IEnumerable<string> usages, X509Extension? alternativeNames,
        DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        ArgumentNullException.ThrowIfNull(authority);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        var oids = new OidCollection();
        foreach (var usage in usages) oids.Add(new Oid(usage));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(oids, false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, true, false));
        if (alternativeNames is not null) request.CertificateExtensions.Add(alternativeNames);
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var issued = request.Create(authority, notBefore, notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    private static void WriteOwnerOnly(string path, byte[] content)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(path, options)) stream.Write(content);
        // An existing file keeps its mode on create: tighten it as well.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }
}
