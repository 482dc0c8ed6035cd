using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;
using RAE.Client.Cluster;
using RAE.Silo;
using RAE.Silo.Security;

namespace RAE.Cluster.Tests.Security;

/// <summary>One silo with mutual TLS on (as in cluster mode), its development certificates, and a second, foreign set.</summary>
public sealed class TlsSiloFixture : IAsyncLifetime
{
    private WebApplication? _app;

    public string Folder { get; } = Path.Combine(Path.GetTempPath(), "rae-tls-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public DevelopmentCertificateFiles Cluster { get; private set; } = null!;
    public DevelopmentCertificateFiles Foreign { get; private set; } = null!;
    public int GatewayPort { get; } = FreePort();
    public const string ClusterId = "tls-test";

    public IServiceProvider Services => _app!.Services;

    public async Task InitializeAsync()
    {
        Cluster = DevelopmentCertificates.Create(Path.Combine(Folder, "cluster"));
        Foreign = DevelopmentCertificates.Create(Path.Combine(Folder, "foreign"));
        _app = RaeSiloHost.Build(overrides: new Dictionary<string, string?>
        {
            ["Rae:Silo:DataFolder"] = Path.Combine(Folder, "data"),
            ["Rae:Silo:SiloPort"] = FreePort().ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:GatewayPort"] = GatewayPort.ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:WebPort"] = FreePort().ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:ClusterId"] = ClusterId,
            ["Rae:Silo:Tls:Enabled"] = "true",
            ["Rae:Silo:Tls:CertificatePath"] = Cluster.SiloCertificatePath,
            ["Rae:Silo:Tls:CertificatePasswordFile"] = Cluster.PasswordPath,
            ["Rae:Silo:Tls:AuthorityPath"] = Cluster.AuthorityPath,
            ["Logging:LogLevel:Default"] = "Warning",
        });
        await _app.StartAsync();
    }

    /// <summary>Connection options for this silo's gateway, short connect timeout (a refused client gives up quickly).</summary>
    public ClusterConnectionOptions Connection(string? certificate = null, string? passwordFile = null, string? authority = null) => new()
    {
        Gateways = [new IPEndPoint(IPAddress.Loopback, GatewayPort)],
        ClusterId = ClusterId,
        ConnectTimeout = TimeSpan.FromSeconds(certificate is null ? 5 : 20),
        TlsCertificatePath = certificate,
        TlsCertificatePassword = passwordFile is null ? null : File.ReadAllText(passwordFile).Trim(),
        TlsAuthorityPath = authority,
    };

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// Mutual TLS at the connection: a client with a certificate of the cluster's authority is served; a plain-TCP client
/// and a client whose certificate another authority issued never reach a grain.
/// </summary>
public sealed class MutualTlsTests(TlsSiloFixture silo) : IClassFixture<TlsSiloFixture>
{
    [Fact]
    public async Task AClientWithACertificateOfTheClustersAuthorityIsServed()
    {
        var files = silo.Cluster;
        await using var client = await RaeClient.ConnectAsync(silo.Connection(files.ClientCertificatePath, files.PasswordPath, files.AuthorityPath));
        Assert.NotNull(await client.ListJobsAsync());
        var status = await client.GetClusterStatusAsync();
        Assert.Single(status.Silos);
    }

    [Fact]
    public void RankRingsUseTheSilosCertificateAndTrustOnlyItsAuthority()
    {
        var ring = silo.Services.GetRequiredService<IOptions<RankDeviceOptions>>().Value.RingTls;
        Assert.NotNull(ring);
        using var own = X509CertificateLoader.LoadPkcs12FromFile(silo.Cluster.SiloCertificatePath, File.ReadAllText(silo.Cluster.PasswordPath));
        using var foreign = X509CertificateLoader.LoadPkcs12FromFile(silo.Foreign.SiloCertificatePath, File.ReadAllText(silo.Foreign.PasswordPath));
        Assert.Equal(own.Thumbprint, ring.Certificate.Thumbprint);
        Assert.True(ring.IsTrustedPeer(own));
        Assert.False(ring.IsTrustedPeer(foreign));
    }

    [Fact]
    public async Task APlainTcpClientIsRefused()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var client = await RaeClient.ConnectAsync(silo.Connection());
        });
        Assert.True(RaeClient.IsUnreachable(error), $"expected a refused connection, got {error.GetType().Name}: {error.Message}");
    }

    [Fact]
    public async Task AClientWhoseCertificateAnotherAuthorityIssuedIsRefused()
    {
        // It trusts the cluster (so it would talk), but its own certificate is not the cluster's: the gateway hangs up.
        // Built by hand, as an attacker would: RaeClient itself refuses to load a certificate its authority did not issue.
        var foreign = silo.Foreign;
        var credentials = ClusterTlsCredentials.FromCertificates(
            X509CertificateLoader.LoadPkcs12FromFile(foreign.ClientCertificatePath, File.ReadAllText(foreign.PasswordPath).Trim(), X509KeyStorageFlags.EphemeralKeySet),
            X509CertificateLoader.LoadCertificateFromFile(silo.Cluster.AuthorityPath));
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(cluster => (cluster.ClusterId, cluster.ServiceId) = (TlsSiloFixture.ClusterId, "rae"));
            client.UseStaticClustering(new IPEndPoint(IPAddress.Loopback, silo.GatewayPort));
            client.UseTls(credentials.Certificate, credentials.ConfigureClient);
        });
        using var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await host.StartAsync(timeout.Token);
            await host.Services.GetRequiredService<IClusterClient>().GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).List().WaitAsync(timeout.Token);
        });
        Assert.True(RaeClient.IsUnreachable(error) || error is OperationCanceledException, $"expected a refused connection, got {error.GetType().Name}: {error.Message}");
        credentials.Dispose();
    }

    [Fact]
    public async Task AClientRefusesAGatewayWhoseCertificateAnotherAuthorityIssued()
    {
        // The client holds the foreign authority's certificate and trusts only it: the cluster's gateway is not trusted.
        var foreign = silo.Foreign;
        var connection = silo.Connection(foreign.ClientCertificatePath, foreign.PasswordPath, foreign.AuthorityPath) with { ConnectTimeout = TimeSpan.FromSeconds(5) };
        var error = await Assert.ThrowsAnyAsync<Exception>(() => ConnectAndListAsync(connection));
        Assert.True(RaeClient.IsUnreachable(error), $"expected a refused connection, got {error.GetType().Name}: {error.Message}");
    }

    [Fact]
    public void ACertificateNotIssuedByTheAuthorityIsRefusedAtLoad()
    {
        var error = Assert.Throws<InvalidDataException>(() =>
            ClusterTlsCredentials.Load(silo.Foreign.ClientCertificatePath, File.ReadAllText(silo.Foreign.PasswordPath).Trim(), silo.Cluster.AuthorityPath));
        Assert.Contains("is not issued by the authority", error.Message);
        var wrongPassword = Assert.Throws<InvalidDataException>(() =>
            ClusterTlsCredentials.Load(silo.Cluster.ClientCertificatePath, "not-the-password", silo.Cluster.AuthorityPath));
        Assert.Contains("cannot be read as a PKCS#12", wrongPassword.Message);
        Assert.DoesNotContain("not-the-password", wrongPassword.Message);
    }

    [Fact]
    public void ClusterModeWithoutCertificatesOrWithASecretOnTheCommandLineDoesNotStart()
    {
        var azure = new Dictionary<string, string?>
        {
            ["Rae:Silo:ClusterMode"] = "Azure",
            ["Rae:Silo:StorageConnectionString"] = "UseDevelopmentStorage=true",
        };
        var noCertificate = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.Build(overrides: azure));
        Assert.Contains("Rae:Silo:Tls:CertificatePath is required when TLS is on (TLS is on by default in Azure mode", string.Join(" ", noCertificate.Failures));

        const string secret = "AccountKey=c2VjcmV0";
        var onCommandLine = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.Build([$"--Rae:Silo:StorageConnectionString={secret}"]));
        var message = string.Join(" ", onCommandLine.Failures);
        Assert.Contains("Rae:Silo:StorageConnectionString was given on the command line", message);
        Assert.Contains("RAE_Rae__Silo__StorageConnectionString", message);
        Assert.DoesNotContain(secret, message);
        var password = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.Build(["--Rae:Silo:Tls:CertificatePassword=hunter2"]));
        Assert.DoesNotContain("hunter2", string.Join(" ", password.Failures));
    }

    [Fact]
    public async Task TheCliWithTheClientCertificateIsServedAndWithoutItIsRefused()
    {
        var files = silo.Cluster;
        string[] connection = ["--gateway", silo.GatewayPort.ToString(CultureInfo.InvariantCulture), "--cluster-id", TlsSiloFixture.ClusterId];
        var (served, output, error) = await Client.Cli.RunAsync(
            ["cluster", "status", .. connection, "--tls-certificate", files.ClientCertificatePath, "--tls-authority", files.AuthorityPath,
             "--tls-password-file", files.PasswordPath]);
        Assert.True(served == 0, $"exit {served}: {error}");
        Assert.Contains("1 silo(s)", output);

        var (refused, _, refusal) = await Client.Cli.RunAsync(["cluster", "status", .. connection, "--connect-timeout", "4"]);
        Assert.Equal(3, refused);
        Assert.Contains("No RAE silo answers", refusal);

        var (usage, _, missingAuthority) = await Client.Cli.RunAsync(["cluster", "status", .. connection, "--tls-certificate", files.ClientCertificatePath]);
        Assert.Equal(2, usage);
        Assert.Contains("--tls-certificate needs --tls-authority", missingAuthority);
    }

    [Fact]
    public async Task TheCertificatesCommandWritesAnAuthorityAndCertificatesItSignsWithAnOwnerOnlyPassword()
    {
        var folder = Path.Combine(silo.Folder, "cli-" + Guid.NewGuid().ToString("N")[..6]);
        var (exitCode, output, error) = await Client.Cli.RunAsync("cluster", "certificates", "--out", folder, "--host", "rae-silo-0.example");
        Assert.True(exitCode == 0, error);
        var password = File.ReadAllText(Path.Combine(folder, DevelopmentCertificates.PasswordFile)).Trim();
        Assert.DoesNotContain(password, output);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(folder, DevelopmentCertificates.PasswordFile)));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(folder, DevelopmentCertificates.SiloFile)));
        }
        using var siloCredentials = ClusterTlsCredentials.Load(Path.Combine(folder, DevelopmentCertificates.SiloFile), password, Path.Combine(folder, DevelopmentCertificates.AuthorityFile));
        using var clientCredentials = ClusterTlsCredentials.Load(Path.Combine(folder, DevelopmentCertificates.ClientFile), password, Path.Combine(folder, DevelopmentCertificates.AuthorityFile));
        Assert.True(siloCredentials.Certificate.MatchesHostname("rae-silo-0.example"));
        Assert.True(siloCredentials.Certificate.MatchesHostname("localhost"));
        using var otherAuthority = X509CertificateLoader.LoadCertificateFromFile(silo.Cluster.AuthorityPath);
        Assert.False(siloCredentials.IsIssuedByAuthority(otherAuthority));
    }

    private static async Task ConnectAndListAsync(ClusterConnectionOptions connection)
    {
        await using var client = await RaeClient.ConnectAsync(connection);
        await client.ListJobsAsync();
    }
}
