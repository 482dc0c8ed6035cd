using System.Net;

namespace RAE.Silo.Web;

/// <summary>
/// The silo's web port (dashboard, job pages, JSON), section "Rae:Silo:Web". It listens on loopback unless
/// <see cref="BindAddress"/> says otherwise; bound anywhere else it requires <see cref="AccessToken"/>.
/// </summary>
public sealed class RaeWebOptions
{
    public const string SectionName = RaeSiloOptions.SectionName + ":Web";
    public const string AccessTokenKey = SectionName + ":AccessToken";
    public const int MinimumAccessTokenLength = 16;

    /// <summary>Address the web port listens on; loopback unless configured (0.0.0.0, a pod's IP, ...).</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// Shared secret a web request must present (as a bearer token, or as the password of HTTP Basic authentication so
    /// a browser can open the pages). Required when <see cref="BindAddress"/> is not loopback; when set, required on
    /// loopback too. From appsettings.json or the environment (RAE_Rae__Silo__Web__AccessToken), never the command line.
    /// </summary>
    public string? AccessToken { get; set; }

    /// <summary>Whether a request must authenticate: a token is configured (validation requires one off loopback).</summary>
    public bool RequiresAuthentication => !string.IsNullOrEmpty(AccessToken);

    public static bool IsLoopback(string address) => IPAddress.TryParse(address, out var ip) && IPAddress.IsLoopback(ip);

    /// <summary>The problems of these options, each naming the setting; empty when they are valid.</summary>
    public static IEnumerable<string> Check(RaeWebOptions options, string prefix)
    {
        if (!IPAddress.TryParse(options.BindAddress, out _))
        {
            yield return $"{prefix}BindAddress '{options.BindAddress}' is not an IP address.";
            yield break;
        }
        if (options.AccessToken is { } token && token.Length < MinimumAccessTokenLength)
            yield return $"{prefix}AccessToken is shorter than {MinimumAccessTokenLength} characters; use a long random secret.";
        else if (options.AccessToken is { } spaced && spaced.Trim() != spaced)
            yield return $"{prefix}AccessToken starts or ends with white space.";
        if (!IsLoopback(options.BindAddress) && string.IsNullOrEmpty(options.AccessToken))
            yield return $"{prefix}BindAddress {options.BindAddress} is not loopback, so {prefix}AccessToken is required (set it in appsettings.json or the environment variable RAE_Rae__Silo__Web__AccessToken).";
    }

    /// <summary>A secret on the command line is visible to every user of the machine (ps); refuse it.</summary>
    public static IEnumerable<string> CheckCommandLine(IEnumerable<string> args)
    {
        foreach (var arg in args)
        {
            var key = arg.TrimStart('-', '/').Split('=', 2)[0].Replace("__", ":", StringComparison.Ordinal);
            if (key.Equals(AccessTokenKey, StringComparison.OrdinalIgnoreCase))
            {
                yield return $"{AccessTokenKey} must not be given on the command line (any user of the machine can read it there); set it in appsettings.json or the environment variable RAE_Rae__Silo__Web__AccessToken.";
                yield break;
            }
        }
    }
}
