using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using RAE.Cluster.Tests.Client;
using RAE.Cluster.Tests.Sampling;
using RAE.Cluster.Tests.Stage2;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Silo.Web;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Cluster.Tests.Web;

/// <summary>
/// An in-process silo runs a tiny DiT^DH training job and a tiny decoded sampling job; headless Chromium opens their
/// pages and the curve and grid images must load, and the PNGs must decode to real pictures, not blanks.
/// </summary>
public sealed class JobPagesBrowserTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>
{
    private string BaseUrl => $"http://127.0.0.1:{silo.WebPort}";

    [Fact]
    public async Task TrainingAndSamplingJobPagesShowTheirCurvesGridCheckpointsAndConfigInChromium()
    {
        var grains = silo.Services.GetRequiredService<IGrainFactory>();
        var registry = grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var config = RaeConfig.Parse(DiTTestJobs.TinyConfig, JobPagesRenderingTests.HostileSource);
        var trainingSpec = TrainingJobSpecs.FromConfig(config, ranks: 1) with { Steps = 3, CheckpointInterval = 2 };
        var trainingId = await registry.SubmitTraining(trainingSpec);
        var samplingId = await registry.SubmitSampling(SamplingTestFiles.Instance.Spec(samples: 4, unitSize: 2));
        await WaitUntilEndedAsync(registry, trainingId);
        await WaitUntilEndedAsync(registry, samplingId);

        using var http = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
        using (var curve = Image.Load<Rgba32>(await http.GetByteArrayAsync($"/jobs/{trainingId}/curves/loss.png")))
            Assert.True(JobPagesRenderingTests.DistinctColours(curve) > 10, "the loss curve PNG is (nearly) uniform");
        using (var gridPng = Image.Load<Rgb24>(await http.GetByteArrayAsync($"/jobs/{samplingId}/grid.png")))
        {
            // 4 decoded 8x8 samples, enlarged to 64 px tiles in a 2x2 grid: real pictures, not one colour per tile.
            Assert.Equal((2 * 64 + 3 * 2, 2 * 64 + 3 * 2), (gridPng.Width, gridPng.Height));
            Assert.True(JobPagesRenderingTests.DistinctColours(gridPng) > 16, "the sample grid is (nearly) uniform");
        }

        using var metrics = JsonDocument.Parse(await http.GetStringAsync($"/api/jobs/{trainingId}/metrics?from=2"));
        Assert.Equal([2L, 3L], metrics.RootElement.GetProperty("metrics").EnumerateArray().Select(m => m.GetProperty("step").GetInt64()));
        using var checkpoints = JsonDocument.Parse(await http.GetStringAsync($"/api/jobs/{trainingId}/checkpoints"));
        var checkpointSteps = checkpoints.RootElement.EnumerateArray().Select(c => c.GetProperty("step").GetInt64()).ToList();
        Assert.Contains(3L, checkpointSteps);
        using var configJson = JsonDocument.Parse(await http.GetStringAsync($"/api/jobs/{trainingId}/config"));
        Assert.Equal(JobConfiguration.From(config).Sha256, configJson.RootElement.GetProperty("sha256").GetString());
        using var gridJson = JsonDocument.Parse(await http.GetStringAsync($"/api/jobs/{samplingId}/grid"));
        Assert.Equal(4, gridJson.RootElement.GetProperty("images").GetArrayLength());
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/jobs/bad..id")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/jobs/train-unknown")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync($"/api/jobs/{trainingId}/metrics?limit=0")).StatusCode);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await HeadlessChromium.LaunchAsync(playwright);
        var page = await browser.NewPageAsync();

        var training = await page.GotoAsync($"{BaseUrl}/jobs/{trainingId}", new PageGotoOptions { WaitUntil = WaitUntilState.Load });
        Assert.Equal(200, training!.Status);
        Assert.Equal("Completed", await page.InnerTextAsync("#state"));
        var curves = await HeadlessChromium.ImagesAsync(page);
        Assert.Equal(MetricCurves.For(trainingSpec.Workload).Select(c => "curve-" + c.Name), curves.Select(i => i.Id));
        Assert.All(curves, image => Assert.True(image.Complete && image.NaturalWidth == MetricCurves.Width, $"{image.Id} did not render: {image}"));
        Assert.Equal(checkpointSteps.Count, await page.Locator("#checkpoints tr").CountAsync() - 1);
        // The configuration's hostile source name is shown as text; nothing it holds became a script.
        Assert.Contains("<script>document.title", await page.InnerTextAsync("body"));
        Assert.Equal(0, await page.EvaluateAsync<int>("() => document.scripts.length"));
        Assert.Contains("training:", await page.InnerTextAsync("#config")); // the canonical YAML, training section included

        var sampling = await page.GotoAsync($"{BaseUrl}/jobs/{samplingId}", new PageGotoOptions { WaitUntil = WaitUntilState.Load });
        Assert.Equal(200, sampling!.Status);
        var grid = Assert.Single(await HeadlessChromium.ImagesAsync(page));
        Assert.Equal("grid", grid.Id);
        Assert.True(grid.Complete && grid.NaturalWidth == 2 * 64 + 3 * 2, $"the grid did not render: {grid}");

        await page.GotoAsync($"{BaseUrl}/jobs", new PageGotoOptions { WaitUntil = WaitUntilState.Load });
        Assert.Equal(1, await page.Locator($"#jobs a[href='/jobs/{trainingId}']").CountAsync());
        Assert.Equal(1, await page.Locator($"#jobs a[href='/jobs/{samplingId}']").CountAsync());

        // A hostile id and failure reason in the list stay text in the browser too.
        await page.SetContentAsync(JobPagesHtml.JobsList([JobPagesRenderingTests.HostileSummary()]));
        Assert.Equal(0, await page.EvaluateAsync<int>("() => document.scripts.length + document.images.length"));
        var row = await page.InnerTextAsync("#jobs");
        Assert.Contains(JobPagesRenderingTests.HostileId, row);
        Assert.Contains("<img src=x onerror=alert(2)>", row);
    }

    private static async Task WaitUntilEndedAsync(IJobRegistryGrain registry, string jobId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            var job = await registry.Get(jobId);
            if (job.State is JobState.Completed) return;
            Assert.False(job.State is JobState.Failed or JobState.Cancelled, $"{job.Kind} job {jobId} ended {job.State}: {job.FailureReason}");
            if (DateTime.UtcNow > deadline) Assert.Fail($"{job.Kind} job {jobId} is still {job.State} after 120 s.");
            await Task.Delay(200);
        }
    }
}
