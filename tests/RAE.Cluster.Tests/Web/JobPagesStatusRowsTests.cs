using RAE.GrainInterfaces;
using RAE.Silo.Web;

namespace RAE.Cluster.Tests.Web;

/// <summary>The status rows of evaluation and encode job pages: progress, values and skipped files, all escaped.</summary>
public sealed class JobPagesStatusRowsTests
{
    private const string Hostile = "<script>alert(1)</script>";

    private static JobSummary Summary(string jobId, JobKind kind) =>
        new(jobId, kind, JobState.Running, 1, 3, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, null);

    [Fact]
    public void AnEvaluationPageShowsItsUnitsValueAndReferenceAsText()
    {
        var status = new EvaluationJobStatus
        {
            JobId = "eval-1",
            State = JobState.Completed,
            Spec = new EvaluationJobSpec { Samples = new EvaluationInput(EvaluationInputKind.SamplingJob, "sample-1"), Reference = new EvaluationInput(EvaluationInputKind.Dataset, Hostile) },
            UnitsTotal = 3,
            UnitsDone = 2,
            Result = new EvaluationResult("fd_resnet18", 12.5, 4, 5, "datasets/x/stats/fd_resnet18-8.npz", ReferenceStatisticsReused: true),
        };
        var page = JobPagesHtml.JobPage(new JobView(Summary("eval-1", JobKind.Evaluation), null, null) { Evaluation = status }, [], null, hasMetrics: false);
        Assert.Contains("<span id=\"units\">2 of 3</span>", page);
        Assert.Contains("<span id=\"metric-value\">12.5</span> (fd_resnet18)", page);
        Assert.Contains("(reused)", page);
        Assert.DoesNotContain("<script", page, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;script&gt;", page);
    }

    [Fact]
    public void AnEncodePageShowsShardsSpeedAndAtMostTwentySkippedFilesEscaped()
    {
        var skipped = Enumerable.Range(0, 25).Select(i => new DatasetSkippedFile($"bad-{i}{Hostile}.png", "not an image")).ToList();
        var status = new EncodeJobStatus
        {
            JobId = "encode-1",
            State = JobState.Running,
            Spec = new EncodeJobSpec { Dataset = "shapes", LatentName = "shapes-latents" },
            ShardsTotal = 4,
            ShardsDone = 1,
            ImagesTotal = 100,
            ImagesDone = 25,
            ImagesPerSecond = 12.25,
            Skipped = skipped,
        };
        var page = JobPagesHtml.JobPage(new JobView(Summary("encode-1", JobKind.Encoding), null, null) { Encoding = status }, [], null, hasMetrics: false);
        Assert.Contains("<span id=\"shards\">1 of 4</span>", page);
        Assert.Contains("25 of 100", page);
        Assert.Contains("12.25", page);
        Assert.Contains("<span id=\"skipped\">25</span>", page);
        Assert.Contains("bad-19&lt;script&gt;", page);
        Assert.DoesNotContain("bad-20&lt;script&gt;", page);
        Assert.Contains("and 5 more", page);
        Assert.DoesNotContain("<script", page, StringComparison.OrdinalIgnoreCase);
    }
}
