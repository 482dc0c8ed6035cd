using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using RAE.Cluster.Tests.Client;
using RAE.Silo;
using RAE.Silo.Web;

namespace RAE.Cluster.Tests.Web;

/// <summary>The web port listens on loopback unless configured, and anywhere else only answers requests with the access token.</summary>
public sealed class WebAccessTests
{
    private const string Token = "s3cret-token-of-the-web-port-0123456789";

    [Fact]
    public void TheWebPortIsLoopbackByDefaultAndOffLoopbackNeedsALongTokenNeverOnTheCommandLine()
    {
        var defaults = RaeSiloHost.ReadOptions(Section([]));
        Assert.Equal("127.0.0.1", defaults.Web.BindAddress);
        Assert.False(defaults.Web.RequiresAuthentication);

        var open = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.ReadOptions(Section(new() { ["Web:BindAddress"] = "0.0.0.0" })));
        Assert.Contains("Rae:Silo:Web:BindAddress 0.0.0.0 is not loopback, so Rae:Silo:Web:AccessToken is required", string.Join(" ", open.Failures));
        var weak = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.ReadOptions(Section(new() { ["Web:BindAddress"] = "0.0.0.0", ["Web:AccessToken"] = "short" })));
        Assert.Contains("Rae:Silo:Web:AccessToken is shorter than 16 characters", string.Join(" ", weak.Failures));
        var bad = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.ReadOptions(Section(new() { ["Web:BindAddress"] = "web-host" })));
        Assert.Contains("Rae:Silo:Web:BindAddress 'web-host' is not an IP address", string.Join(" ", bad.Failures));
        Assert.True(RaeSiloHost.ReadOptions(Section(new() { ["Web:BindAddress"] = "0.0.0.0", ["Web:AccessToken"] = Token })).Web.RequiresAuthentication);

        foreach (var args in new[] { new[] { $"--Rae:Silo:Web:AccessToken={Token}" }, ["--Rae__Silo__Web__AccessToken", Token] })
        {
            var onCommandLine = Assert.Throws<OptionsValidationException>(() => RaeSiloHost.Build(args));
            Assert.Contains("must not be given on the command line", string.Join(" ", onCommandLine.Failures));
            Assert.DoesNotContain(Token, string.Join(" ", onCommandLine.Failures));
        }
    }

    [Fact]
    public async Task OffLoopbackTheWebPortRefusesRequestsWithoutTheTokenAndAnswersThoseWithIt()
    {
        var dataFolder = Path.Combine(Path.GetTempPath(), "rae-web-access-" + Guid.NewGuid().ToString("N")[..8]);
        var webPort = CliSiloFixture.FreePort();
        await using var app = RaeSiloHost.Build(overrides: new Dictionary<string, string?>
        {
            ["Rae:Silo:DataFolder"] = dataFolder,
            ["Rae:Silo:SiloPort"] = CliSiloFixture.FreePort().ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:GatewayPort"] = CliSiloFixture.FreePort().ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:WebPort"] = webPort.ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:ClusterId"] = "web-access-test",
            ["Rae:Silo:Web:BindAddress"] = "0.0.0.0",
            [RaeWebOptions.AccessTokenKey] = Token,
            ["Logging:LogLevel:Default"] = "Warning",
        });
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{webPort}"), Timeout = TimeSpan.FromSeconds(30) };
            foreach (var path in new[] { "/api/jobs", "/jobs", "/api/silo", "/dashboard/", "/jobs/train-x/grid.png" })
            {
                var refused = await http.GetAsync(path);
                Assert.True(refused.StatusCode == HttpStatusCode.Unauthorized, $"{path} answered {refused.StatusCode} without a token");
                Assert.Contains(refused.Headers.WwwAuthenticate, header => header.Scheme == "Basic");
            }
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, "/api/jobs", new AuthenticationHeaderValue("Bearer", Token + "x"))).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, "/api/jobs", new AuthenticationHeaderValue("Bearer", Token[..^1]))).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, "/api/jobs", new AuthenticationHeaderValue("Basic", "not base64!"))).StatusCode);

            var bearer = await SendAsync(http, "/api/jobs", new AuthenticationHeaderValue("Bearer", Token));
            Assert.Equal(HttpStatusCode.OK, bearer.StatusCode);
            Assert.StartsWith("[", await bearer.Content.ReadAsStringAsync());
            var basic = await SendAsync(http, "/jobs", new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("anyone:" + Token))));
            Assert.Equal(HttpStatusCode.OK, basic.StatusCode);
            Assert.Contains("<h1>Jobs</h1>", await basic.Content.ReadAsStringAsync());

            // The liveness probe stays open and tells nothing.
            Assert.Equal("ok", await http.GetStringAsync(WebAccessMiddleware.HealthPath));
        }
        finally
        {
            await app.StopAsync();
            try { Directory.Delete(dataFolder, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, string path, AuthenticationHeaderValue authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = authorization;
        return await http.SendAsync(request);
    }

    private static IConfiguration Section(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();
}
