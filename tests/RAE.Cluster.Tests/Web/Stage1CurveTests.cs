using RAE.GrainInterfaces;
using RAE.Silo.Web;

namespace RAE.Cluster.Tests.Web;

/// <summary>A Stage 1 (rae-decoder) job page draws the losses, λ, discriminator accuracy and logits its steps report; other jobs do not.</summary>
public sealed class Stage1CurveTests
{
    private static readonly string[] Stage1Curves =
        ["rec-loss", "lpips-loss", "gan-loss", "total-loss", "lambda", "disc-loss", "disc-acc", "logits-real", "logits-fake"];

    private static JobView TrainingJob(string workload) => new(
        new JobSummary("train-1", JobKind.Training, JobState.Running, 1, 4, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, null),
        new TrainingJobStatus { JobId = "train-1", State = JobState.Running, Spec = new TrainingJobSpec { Workload = workload, Steps = 4 } },
        null);

    [Fact]
    public void ADecoderJobPageShowsTheStage1CurvesAndADiTJobPageDoesNot()
    {
        var decoder = JobPagesHtml.JobPage(TrainingJob(TrainingJobSpecs.DecoderWorkload), [], null, hasMetrics: true);
        foreach (var name in Stage1Curves.Append("loss"))
            Assert.Contains($"src=\"/jobs/train-1/curves/{name}.png\"", decoder);

        var dit = JobPagesHtml.JobPage(TrainingJob(TrainingJobSpecs.DiTWorkload), [], null, hasMetrics: true);
        Assert.Contains("src=\"/jobs/train-1/curves/loss.png\"", dit);
        foreach (var name in Stage1Curves) Assert.DoesNotContain($"/curves/{name}.png", dit);
    }

    [Fact]
    public void ADecoderJobPageDrawsACurveAndARowPerOnlineReconstructionMetric()
    {
        var online = new OnlineEvaluationSpec { Interval = 2, ReconstructionMetrics = [EvaluationMetric.Psnr, EvaluationMetric.Ssim, EvaluationMetric.RfdResNet18] };
        var evaluations = new[] { ("psnr", 21.5), ("ssim", 0.625), ("rfd_resnet18", 37.25) }
            .Select(e => new OnlineEvaluationRecord(2, e.Item1, e.Item2, 6, null, null, 0, DateTimeOffset.UnixEpoch)).ToList();
        var baseJob = TrainingJob(TrainingJobSpecs.DecoderWorkload);
        var job = baseJob with { Training = baseJob.Training! with { Spec = baseJob.Training.Spec with { OnlineEvaluation = online }, Evaluations = evaluations } };
        Assert.Equal(["psnr", "ssim", "rfd_resnet18"], job.OnlineMetrics);

        var page = JobPagesHtml.JobPage(job, [], null, hasMetrics: true);
        foreach (var name in new[] { "eval", "eval-ssim", "eval-rfd_resnet18" })
            Assert.Contains($"id=\"curve-{name}\" src=\"/jobs/train-1/curves/{name}.png\"", page);
        Assert.Contains("Online rfd_resnet18</th><td>step 2: 37.25", page);
        var (steps, values) = MetricCurves.EvaluationPoints(evaluations, "rfd_resnet18");
        Assert.Equal([2.0], steps);
        Assert.Equal([37.25], values);
    }

    [Fact]
    public void Stage1CurvesTakeTheirValuesFromTheStepDetailsAndSkipStepsWithoutThem()
    {
        // λ and the discriminator values only exist on steps with the GAN branch: step 2 has none.
        var metrics = new List<StepMetrics>
        {
            new() { Step = 1, Loss = 0.3, Details = new Dictionary<string, double> { ["lambda"] = 0.7, ["disc_acc"] = 0.5, ["logits_real"] = 0.1 } },
            new() { Step = 2, Loss = 0.2, Details = new Dictionary<string, double> { ["rec_loss"] = 0.2 } },
            new() { Step = 3, Loss = 0.1 },
            new() { Step = 4, Loss = 0.1, Details = new Dictionary<string, double> { ["lambda"] = 0.9, ["disc_acc"] = 0.75, ["logits_real"] = -0.2 } },
        };
        foreach (var (name, expected) in new[] { ("lambda", new[] { 0.7, 0.9 }), ("disc-acc", [0.5, 0.75]), ("logits-real", [0.1, -0.2]) })
        {
            var curve = MetricCurves.Find(name) ?? throw new Xunit.Sdk.XunitException($"no curve '{name}'");
            Assert.Equal(TrainingJobSpecs.DecoderWorkload, curve.Workload);
            var (steps, values) = MetricCurves.Points(metrics, curve);
            Assert.Equal([1.0, 4.0], steps);
            Assert.Equal(expected, values);
        }
        Assert.Equal([2.0], MetricCurves.Points(metrics, MetricCurves.Find("rec-loss")!).Steps);
    }
}
