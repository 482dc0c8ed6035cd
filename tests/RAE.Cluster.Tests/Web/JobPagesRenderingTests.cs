using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Data;
using RAE.Silo.Web;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Cluster.Tests.Web;

/// <summary>The job pages' pieces without a silo: escaping, id rules, grid names and tiling, curve points and PNGs.</summary>
public sealed class JobPagesRenderingTests
{
    internal const string HostileId = "evil<script>alert(1)</script>";
    internal const string HostileSource = "</pre><script>document.title='injected'</script><pre>";

    internal static JobSummary HostileSummary() =>
        new(HostileId, JobKind.Sampling, JobState.Failed, 1, 4, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "<img src=x onerror=alert(2)>");

    [Fact]
    public void HostileIdsReasonsAndConfigsAreEncodedNotInjected()
    {
        var list = JobPagesHtml.JobsList([HostileSummary()]);
        Assert.DoesNotContain("<script", list, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img src=x", list, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("evil&lt;script&gt;alert(1)&lt;/script&gt;", list);
        Assert.DoesNotContain("href=\"/jobs/evil", list); // an id the web port refuses is not linked

        var config = JobConfiguration.From(RaeConfig.Parse(Stage2.DiTTestJobs.TinyConfig, HostileSource));
        var training = new TrainingJobStatus { JobId = "train-1", State = JobState.Running, Spec = new TrainingJobSpec { Config = config, Steps = 4 } };
        var view = new JobView(new JobSummary("train-1", JobKind.Training, JobState.Running, 1, 4, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "</td><script>x()</script>"), training, null);
        var page = JobPagesHtml.JobPage(view, [], null, hasMetrics: true);
        Assert.DoesNotContain("<script", page, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;/pre&gt;&lt;script&gt;", page);
        Assert.Contains("src=\"/jobs/train-1/curves/loss.png\"", page);
        Assert.Contains("<meta http-equiv=\"refresh\"", page); // running jobs refresh without script
    }

    [Theory]
    [InlineData("train-20260101-120000-1a2b3c4d", null)]
    [InlineData("sample_x.1", null)]
    [InlineData("", "empty")]
    [InlineData("a/b", "only letters")]
    [InlineData("<b>", "only letters")]
    [InlineData("a..b", "'..'")]
    [InlineData(".hidden", "'.'")]
    public void JobIdsOutsideTheWebRulesAreRefusedWithTheReason(string jobId, string? problem)
    {
        var found = JobIds.Problem(jobId);
        if (problem is null) Assert.Null(found);
        else Assert.Contains(problem, found);
        Assert.Contains("at most 128", JobIds.Problem(new string('a', 129)));
    }

    [Theory]
    [InlineData("jobs/j/recon/step-0000040.png", 40L)]
    [InlineData("jobs/j/samples/step-1234567.png", 1234567L)]
    [InlineData("jobs/j/recon/step-.png", null)]
    [InlineData("jobs/j/recon/step-12a.png", null)]
    [InlineData("jobs/j/recon/latest.png", null)]
    [InlineData("jobs/j/recon/step-0000040.jpg", null)]
    public void GridStepsAreReadFromStepNames(string path, long? step) => Assert.Equal(step, LatestGrid.StepOf(path));

    [Fact]
    public async Task TheNewestStepGridOfAnyKnownFolderIsTheLatestAndAStoredGridMustBeAPng()
    {
        var root = Path.Combine(Path.GetTempPath(), "rae-grid-test-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var blobs = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = root });
            await blobs.EnsureAvailableAsync();
            var job = new JobView(new JobSummary("stage1-a", JobKind.Training, JobState.Running, 0, 10, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, null), null, null);
            Assert.Null(await LatestGrid.FindAsync(blobs, job));

            var png = LatestGrid.Tile([RgbImage.Filled(8, 8, 1, 2, 3)]);
            await blobs.PutBytesAsync("jobs/stage1-a/recon/step-0000040.png", png);
            await blobs.PutBytesAsync("jobs/stage1-a/recon/step-0000120.png", png);
            await blobs.PutBytesAsync("jobs/stage1-a/samples/step-0000080.png", png);
            await blobs.PutBytesAsync("jobs/stage1-a/recon/notes.txt", "not a grid"u8.ToArray());
            await blobs.PutBytesAsync("jobs/stage1-ab/recon/step-0000999.png", png); // another job sharing the prefix
            var latest = await LatestGrid.FindAsync(blobs, job);
            Assert.NotNull(latest);
            Assert.Equal(("reconstruction", 120L, false), (latest.Kind, latest.Step, latest.Composed));
            Assert.Equal(["jobs/stage1-a/recon/step-0000120.png"], latest.Blobs);
            Assert.Equal(png, await LatestGrid.RenderPngAsync(blobs, latest));

            await blobs.PutBytesAsync("jobs/stage1-a/samples/step-0000200.png", "<html>not a png</html>"u8.ToArray());
            var forged = await LatestGrid.FindAsync(blobs, job);
            Assert.Equal(("samples", 200L), (forged!.Kind, forged.Step));
            await Assert.ThrowsAsync<InvalidDataException>(() => LatestGrid.RenderPngAsync(blobs, forged));
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public void CurvePointsLeaveOutNonFiniteValuesAndAverageLongRunsIntoBuckets()
    {
        var metrics = Enumerable.Range(1, 10).Select(step => new StepMetrics { Step = step, Loss = step == 5 ? double.NaN : step }).ToList();
        var loss = MetricCurves.Find("loss")!;
        var (steps, values) = MetricCurves.Points(metrics, loss);
        Assert.Equal(9, steps.Length);
        Assert.DoesNotContain(5.0, steps);
        Assert.All(values, v => Assert.True(double.IsFinite(v)));

        var (bucketSteps, bucketValues) = MetricCurves.Points(metrics, loss, maxPoints: 3);
        Assert.Equal([2.0, 17.0 / 3, 9.0], bucketSteps); // the 9 finite points in buckets of 3: (1,2,3), (4,6,7), (8,9,10)
        Assert.Equal(bucketSteps, bucketValues);
        Assert.Null(MetricCurves.Find("nope"));
    }

    [Fact]
    public void ACurvePngDrawsTheLineAndAnEmptyOneSaysSo()
    {
        var metrics = Enumerable.Range(0, 40).Select(step => new StepMetrics { Step = step, Loss = 2.0 / (1 + step) }).ToList();
        using var curve = Image.Load<Rgba32>(MetricCurves.RenderPng(metrics, MetricCurves.Find("loss")!, "train-1"));
        Assert.Equal((MetricCurves.Width, MetricCurves.Height), (curve.Width, curve.Height));
        Assert.True(DistinctColours(curve) > 10, "the curve image is (nearly) uniform");
        using var empty = Image.Load<Rgba32>(MetricCurves.RenderPng([], MetricCurves.Find("loss")!, "train-1"));
        Assert.Equal(MetricCurves.Width, empty.Width);
    }

    [Fact]
    public void TilingEnlargesSmallImagesAndKeepsTheirPixels()
    {
        var images = Enumerable.Range(0, 5).Select(i => RgbImage.Filled(8, 8, (byte)(i * 50), 10, 200)).ToList();
        using var grid = Image.Load<Rgb24>(LatestGrid.Tile(images));
        // 3 columns, 2 rows of 64 px tiles (8 px enlarged 8x) with 2 px gaps.
        Assert.Equal((3 * 64 + 4 * 2, 2 * 64 + 3 * 2), (grid.Width, grid.Height));
        Assert.Equal(new Rgb24(0, 10, 200), grid[2 + 10, 2 + 10]);
        Assert.Equal(new Rgb24(150, 10, 200), grid[2 + 10, 2 + 64 + 2 + 63]);
        Assert.Equal(new Rgb24(255, 255, 255), grid[0, 0]);
    }

    internal static int DistinctColours<TPixel>(Image<TPixel> image) where TPixel : unmanaged, IPixel<TPixel>
    {
        var colours = new HashSet<TPixel>();
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
                foreach (var pixel in rows.GetRowSpan(y)) colours.Add(pixel);
        });
        return colours.Count;
    }
}
