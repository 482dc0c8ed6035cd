using System.CommandLine;
using RAE.Silo.Security;

namespace RAE.Client.Commands;

/// <summary>
/// `rae cluster certificates --out DIR [--host NAME ...]`: a self-signed development authority, a silo certificate and a
/// client certificate it signs, for the mutual TLS of a local or test cluster (infra/cluster.sh runs it). The password
/// of both PKCS#12 files is written to DIR/certificate.password (owner-only) and never printed.
/// </summary>
public sealed class ClusterCertificatesCommand : ICliCommand
{
    private readonly Option<string> _out = new("--out") { HelpName = "DIR", Description = "Folder the certificates are written to", Required = true };

    private readonly Option<string[]> _hosts = new("--host")
    {
        HelpName = "NAME|ADDRESS",
        Description = "A host name or address the silos are reached by, besides localhost and the loopback addresses (repeatable)",
        AllowMultipleArgumentsPerToken = false,
    };

    public ClusterCertificatesCommand() =>
        Command = new Command("certificates", "Write a development certificate authority and the silo and client certificates it signs (mutual TLS)") { _out, _hosts };

    public string Name => "cluster certificates";

    public Command Command { get; }

    public Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var folder = parsed.GetRequiredValue(_out);
        if (string.IsNullOrWhiteSpace(folder)) throw new UsageException("--out must name a folder");
        DevelopmentCertificateFiles files;
        try
        {
            files = DevelopmentCertificates.Create(folder, parsed.GetValue(_hosts) ?? []);
        }
        catch (Exception problem) when (problem is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"rae cluster certificates: cannot write into '{folder}': {problem.Message}");
            return Task.FromResult(1);
        }
        output.WriteLine($"authority: {files.AuthorityPath}");
        output.WriteLine($"silo certificate: {files.SiloCertificatePath}");
        output.WriteLine($"client certificate: {files.ClientCertificatePath}");
        output.WriteLine($"password file (owner-only): {files.PasswordPath}");
        return Task.FromResult(0);
    }
}
