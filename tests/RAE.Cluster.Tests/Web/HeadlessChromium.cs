using Microsoft.Playwright;

namespace RAE.Cluster.Tests.Web;

/// <summary>
/// Debian's Chromium driven by Playwright (which cannot download its own browsers here). A missing browser fails the
/// test with what to install: these tests must never pass by skipping.
/// </summary>
internal static class HeadlessChromium
{
    public const string DefaultPath = "/usr/bin/chromium";

    /// <summary>RAE_CHROMIUM names another Chromium executable.</summary>
    public static string ExecutablePath => Environment.GetEnvironmentVariable("RAE_CHROMIUM") is { Length: > 0 } path ? path : DefaultPath;

    public static async Task<IBrowser> LaunchAsync(IPlaywright playwright)
    {
        var path = ExecutablePath;
        if (!File.Exists(path))
            Assert.Fail($"The job page tests need headless Chromium, and there is none at {path}: install Debian's package (apt-get install -y chromium; .ci/run installs it when missing) or set RAE_CHROMIUM to a Chromium executable.");
        return await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = path, Headless = true, Timeout = 60_000 });
    }

    /// <summary>Every image of the page: its id, whether it finished loading, and its decoded width (0 when it failed).</summary>
    public static async Task<IReadOnlyList<(string Id, bool Complete, int NaturalWidth)>> ImagesAsync(IPage page)
    {
        var images = await page.EvaluateAsync<ImageState[]>("() => Array.from(document.images).map(i => ({ id: i.id, complete: i.complete, naturalWidth: i.naturalWidth }))");
        return images.Select(i => (i.Id, i.Complete, i.NaturalWidth)).ToList();
    }

    /// <summary>Playwright fills results through a parameterless constructor and setters.</summary>
    private sealed class ImageState
    {
        public string Id { get; set; } = "";
        public bool Complete { get; set; }
        public int NaturalWidth { get; set; }
    }
}
