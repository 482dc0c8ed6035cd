using RAE.GrainInterfaces;

namespace RAE.Silo.Web;

/// <summary>
/// One curve a job page draws: its URL name, title, axis label and the value it takes from a step's metrics; a curve
/// with a <paramref name="Workload"/> is drawn only for that workload's jobs.
/// </summary>
public sealed record MetricCurve(string Name, string Title, string YLabel, Func<StepMetrics, double> Value, string? Workload = null);

/// <summary>
/// The curves of a training job's step metrics, rendered server-side with ScottPlot as PNG (no script, no CDN). Long
/// runs are reduced to at most <see cref="MaxPoints"/> bucket means so a page stays cheap whatever the step count;
/// non-finite values are left out (a diverged step must not break the axes).
/// </summary>
public static class MetricCurves
{
    public const int MaxPoints = 2000;
    public const int Width = 640;
    public const int Height = 320;

    public static IReadOnlyList<MetricCurve> All { get; } =
    [
        new("loss", "Training loss", "loss", m => m.Loss),
        new("grad-norm", "Gradient norm (before clipping)", "L2 norm", m => m.GradientNorm),
        new("lr", "Learning rate", "learning rate", m => m.LearningRate),
        new("throughput", "Throughput", "samples / s", m => m.SamplesPerSecondPerRank.Sum()),
        new("step-time", "Step time", "seconds", m => m.StepSeconds),
        Stage1("rec_loss", "Reconstruction L1", "L1"),
        Stage1("lpips_loss", "Perceptual loss", "loss"),
        Stage1("gan_loss", "Generator GAN loss", "loss"),
        Stage1("total_loss", "Generator total loss", "loss"),
        Stage1("lambda", "Adaptive weight λ", "λ"),
        Stage1("disc_loss", "Discriminator loss", "loss"),
        Stage1("disc_acc", "Discriminator accuracy", "accuracy"),
        Stage1("logits_real", "Discriminator logits on real images", "mean logit"),
        Stage1("logits_fake", "Discriminator logits on reconstructions", "mean logit"),
    ];

    /// <summary>The curves a job of <paramref name="workload"/> has: the common ones and that workload's own.</summary>
    public static IEnumerable<MetricCurve> For(string? workload) => All.Where(curve => curve.Workload is null || curve.Workload == workload);

    /// <summary>A Stage 1 value the decoder worker reports in a step's details (absent on steps without it: not drawn).</summary>
    private static MetricCurve Stage1(string key, string title, string yLabel) =>
        new(key.Replace('_', '-'), title, yLabel, m => m.Details is { } details && details.TryGetValue(key, out var value) ? value : double.NaN,
            TrainingJobSpecs.DecoderWorkload);

    public static MetricCurve? Find(string name) => All.FirstOrDefault(curve => curve.Name.Equals(name, StringComparison.Ordinal));

    /// <summary>The (step, value) points of <paramref name="curve"/>, finite only, reduced to at most <paramref name="maxPoints"/>.</summary>
    public static (double[] Steps, double[] Values) Points(IReadOnlyList<StepMetrics> metrics, MetricCurve curve, int maxPoints = MaxPoints)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPoints, 1);
        var finite = metrics.Select(m => (Step: (double)m.Step, Value: curve.Value(m))).Where(p => double.IsFinite(p.Value)).ToList();
        var buckets = Math.Max(1, (finite.Count + maxPoints - 1) / maxPoints);
        var chunks = finite.Chunk(buckets).ToList();
        return (chunks.Select(c => c.Average(p => p.Step)).ToArray(), chunks.Select(c => c.Average(p => p.Value)).ToArray());
    }

    /// <summary>A PNG of the curve; a job with no finite point yet gets an empty plot that says so.</summary>
    public static byte[] RenderPng(IReadOnlyList<StepMetrics> metrics, MetricCurve curve, string jobId)
    {
        var (steps, values) = Points(metrics, curve);
        return RenderPng(steps, values, curve.Title, curve.YLabel, jobId);
    }

    /// <summary>The URL name of the online evaluation curve, drawn next to the step curves of a job that evaluates online.</summary>
    public const string EvaluationCurveName = "eval";

    /// <summary>The URL name of an online metric's curve: <see cref="EvaluationCurveName"/> for the first, <c>eval-METRIC</c> for the others.</summary>
    public static string EvaluationCurveNameOf(string metric, bool first) => first ? EvaluationCurveName : $"{EvaluationCurveName}-{metric}";

    /// <summary>The (step, value) points of the online evaluations of <paramref name="metric"/>; failed ones are left out.</summary>
    public static (double[] Steps, double[] Values) EvaluationPoints(IReadOnlyList<OnlineEvaluationRecord> evaluations, string metric)
    {
        var points = evaluations.Where(e => e.Metric == metric && double.IsFinite(e.Value)).OrderBy(e => e.Step).ToList();
        return (points.Select(e => (double)e.Step).ToArray(), points.Select(e => e.Value).ToArray());
    }

    /// <summary>A PNG of the online metric over the steps (the first metric recorded, e.g. fd_resnet18 or psnr).</summary>
    public static byte[] RenderEvaluationPng(IReadOnlyList<OnlineEvaluationRecord> evaluations, string metric, string jobId)
    {
        var (steps, values) = EvaluationPoints(evaluations, metric);
        return RenderPng(steps, values, $"Online evaluation ({metric})", metric, jobId);
    }

    private static byte[] RenderPng(double[] steps, double[] values, string title, string yLabel, string jobId)
    {
        var curve = new { Title = title, YLabel = yLabel };
        using var plot = new ScottPlot.Plot();
        if (steps.Length > 0)
        {
            var line = plot.Add.ScatterLine(steps, values);
            line.LineWidth = 2;
            line.MarkerSize = steps.Length <= 50 ? 5 : 0;
        }
        plot.Title(steps.Length > 0 ? $"{curve.Title}: {jobId}" : $"{curve.Title}: {jobId} (no steps yet)");
        plot.XLabel("step");
        plot.YLabel(curve.YLabel);
        return plot.GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png);
    }
}
