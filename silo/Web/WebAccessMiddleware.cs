using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace RAE.Silo.Web;

/// <summary>
/// Refuses every web request (dashboard, job pages, JSON) without the configured access token, given as
/// <c>Authorization: Bearer TOKEN</c> or as the password of HTTP Basic authentication (any user name), so a browser
/// can open the pages after its login prompt and the dashboard's own requests carry it. <see cref="HealthPath"/> stays
/// open for liveness probes and says nothing but "ok". Tokens are compared in constant time.
/// </summary>
public sealed class WebAccessMiddleware
{
    public const string HealthPath = "/healthz";
    private const string Realm = "rae-silo";

    private readonly RequestDelegate _next;
    private readonly byte[] _expectedHash;
    private readonly ILogger<WebAccessMiddleware> _logger;

    public WebAccessMiddleware(RequestDelegate next, string accessToken, ILogger<WebAccessMiddleware> logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(accessToken);
        _next = next;
        _expectedHash = SHA256.HashData(Encoding.UTF8.GetBytes(accessToken));
        _logger = logger;
    }

    public Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Path.Equals(HealthPath, StringComparison.Ordinal) || Presents(context.Request))
            return _next(context);
        _logger.LogInformation("Refused an unauthenticated web request for {Path} from {Remote}", context.Request.Path.Value, context.Connection.RemoteIpAddress);
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = $"Basic realm=\"{Realm}\", charset=\"UTF-8\"";
        context.Response.Headers.Append("WWW-Authenticate", $"Bearer realm=\"{Realm}\"");
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync("This silo's web port requires authentication: send the access token as 'Authorization: Bearer TOKEN' or as the Basic password.\n");
    }

    private bool Presents(HttpRequest request)
    {
        if (!AuthenticationHeaderValue.TryParse(request.Headers.Authorization.ToString(), out var header) || header.Parameter is null)
            return false;
        string? token = null;
        if (header.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            token = header.Parameter;
        else if (header.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
            token = BasicPassword(header.Parameter);
        return token is not null && Matches(token);
    }

    /// <summary>Hashing both sides first makes the comparison length-independent as well as constant-time.</summary>
    private bool Matches(string token) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(token)), _expectedHash);

    private static string? BasicPassword(string encoded)
    {
        var bytes = new byte[(encoded.Length * 3 + 3) / 4];
        if (!Convert.TryFromBase64String(encoded, bytes, out var length)) return null;
        var credentials = Encoding.UTF8.GetString(bytes, 0, length);
        var colon = credentials.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? null : credentials[(colon + 1)..];
    }
}

public static class WebAccessApplicationExtensions
{
    /// <summary>Adds <see cref="WebAccessMiddleware"/> when the options ask for authentication, and the open health probe.</summary>
    public static void UseRaeWebAccess(this WebApplication app, RaeWebOptions options)
    {
        if (options.RequiresAuthentication)
            app.UseMiddleware<WebAccessMiddleware>(options.AccessToken!);
        app.MapGet(WebAccessMiddleware.HealthPath, () => Results.Text("ok"));
    }
}
