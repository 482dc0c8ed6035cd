using System.Globalization;
using System.Net;
using System.Text;
using RAE.GrainInterfaces;

namespace RAE.Silo.Web;

/// <summary>
/// Plain HTML of the job pages: no script, no external asset, every value from a job (ids, configs, failure reasons)
/// HTML-encoded and every id in a link URL-encoded, so a hostile id or config cannot inject markup.
/// </summary>
public static class JobPagesHtml
{
    /// <summary>Sent with every page: nothing but same-origin images and the inline style may load, and no script runs.</summary>
    public const string ContentSecurityPolicy = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private const string Style = """
        body { font-family: sans-serif; margin: 1.5em; color: #222; }
        table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
        th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
        th { background: #f3f3f3; }
        pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }
        .state-Failed { color: #b00; } .state-Completed { color: #070; } .state-Running { color: #05a; }
        img { border: 1px solid #ddd; margin: 0.3em; image-rendering: pixelated; }
        nav a { margin-right: 1em; }
        """;

    public static string H(string? text) => WebUtility.HtmlEncode(text ?? "");

    public static string JobUrl(string jobId) => "/jobs/" + Uri.EscapeDataString(jobId);

    public static string JobsList(IReadOnlyList<JobSummary> jobs)
    {
        var html = Begin("RAE jobs", refreshSeconds: jobs.Any(IsActive) ? 10 : null);
        html.Append("<h1>Jobs</h1>\n");
        if (jobs.Count == 0)
            html.Append("<p>No jobs yet. Submit one with <code>rae train</code> or <code>rae sample</code>.</p>\n");
        else
        {
            html.Append("<table id=\"jobs\">\n<tr><th>Job</th><th>Kind</th><th>State</th><th>Progress</th><th>Created (UTC)</th><th>Updated (UTC)</th><th>Failure</th></tr>\n");
            foreach (var job in jobs.OrderByDescending(j => j.CreatedAt).ThenBy(j => j.JobId, StringComparer.Ordinal))
            {
                var name = JobIds.IsValid(job.JobId) ? $"<a href=\"{H(JobUrl(job.JobId))}\">{H(job.JobId)}</a>" : H(job.JobId);
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{name}</td><td>{H(job.Kind.ToString())}</td><td class=\"state-{H(job.State.ToString())}\">{H(job.State.ToString())}</td><td>{Progress(job.Progress, job.Total)}</td><td>{Time(job.CreatedAt)}</td><td>{Time(job.UpdatedAt)}</td><td>{H(job.FailureReason)}</td></tr>\n");
            }
            html.Append("</table>\n");
        }
        html.Append("<p>JSON: <a href=\"/api/jobs\">/api/jobs</a></p>\n");
        return End(html);
    }

    public static string JobPage(JobView job, IReadOnlyList<CheckpointInfo> checkpoints, GridSource? grid, bool hasMetrics)
    {
        var id = job.JobId;
        var url = H(JobUrl(id));
        var api = H("/api" + JobUrl(id));
        var html = Begin($"{id} · RAE job", refreshSeconds: IsActive(job.Summary) ? 10 : null);
        html.Append(CultureInfo.InvariantCulture, $"<h1>{H(job.Summary.Kind.ToString())} job <code id=\"job-id\">{H(id)}</code></h1>\n");

        html.Append("<h2>Status</h2>\n<table id=\"status\">\n");
        foreach (var (name, value) in StatusRows(job))
            html.Append(CultureInfo.InvariantCulture, $"<tr><th>{H(name)}</th><td>{value}</td></tr>\n");
        html.Append("</table>\n");

        html.Append("<h2>Curves</h2>\n");
        if (hasMetrics)
        {
            foreach (var curve in MetricCurves.For(job.Training?.Spec.Workload))
                html.Append(CultureInfo.InvariantCulture, $"<img class=\"curve\" id=\"curve-{H(curve.Name)}\" src=\"{url}/curves/{H(curve.Name)}.png\" alt=\"{H(curve.Title)}\" width=\"{MetricCurves.Width}\" height=\"{MetricCurves.Height}\">\n");
            for (var i = 0; i < job.OnlineMetrics.Count; i++)
            {
                var (metric, name) = (job.OnlineMetrics[i], MetricCurves.EvaluationCurveNameOf(job.OnlineMetrics[i], first: i == 0));
                html.Append(CultureInfo.InvariantCulture, $"<img class=\"curve\" id=\"curve-{H(name)}\" src=\"{url}/curves/{H(name)}.png\" alt=\"{H("Online evaluation: " + metric)}\" width=\"{MetricCurves.Width}\" height=\"{MetricCurves.Height}\">\n");
            }
        }
        else
            html.Append("<p id=\"no-curves\">No step metrics recorded (yet).</p>\n");

        html.Append("<h2>Latest grid</h2>\n");
        if (grid is null)
            html.Append("<p id=\"no-grid\">No sample or reconstruction grid (yet).</p>\n");
        else
        {
            var caption = grid.Step is { } step ? $"{grid.Kind} at step {step}" : $"the first {grid.Blobs.Count} {grid.Kind}";
            html.Append(CultureInfo.InvariantCulture, $"<figure><img id=\"grid\" src=\"{url}/grid.png\" alt=\"{H(caption)}\"><figcaption>{H(caption)}</figcaption></figure>\n");
        }

        if (job.HasCheckpoints)
        {
            html.Append("<h2>Checkpoints</h2>\n");
            if (checkpoints.Count == 0) html.Append("<p>None committed yet.</p>\n");
            else
            {
                html.Append("<table id=\"checkpoints\">\n<tr><th>Step</th><th>Loss</th><th>Size</th><th>SHA-256</th><th>Committed (UTC)</th><th>Blob</th></tr>\n");
                foreach (var checkpoint in checkpoints.OrderBy(c => c.Step))
                    html.Append(CultureInfo.InvariantCulture, $"<tr><td>{checkpoint.Step}</td><td>{Number(checkpoint.Loss)}</td><td>{Bytes(checkpoint.SizeBytes)}</td><td><code>{H(checkpoint.Sha256)}</code></td><td>{Time(checkpoint.CommittedAt)}</td><td><code>{H(checkpoint.Location)}</code></td></tr>\n");
                html.Append("</table>\n");
            }
        }

        html.Append("<h2>Configuration</h2>\n");
        if (job.Config is { } config)
            html.Append(CultureInfo.InvariantCulture, $"<p>From <code>{H(config.SourceName)}</code>, SHA-256 <code>{H(config.Sha256)}</code>:</p>\n<pre id=\"config\">{H(config.Yaml)}</pre>\n");
        else if (job.Sampling?.Spec.SourceTrainingJobId is { } source)
            html.Append(CultureInfo.InvariantCulture, $"<p>The configuration stored in training job <code>{H(source)}</code>'s checkpoint.</p>\n");
        else
            html.Append("<p>No configuration.</p>\n");

        html.Append(CultureInfo.InvariantCulture, $"<p>JSON: <a href=\"{api}\">status</a>");
        if (hasMetrics) html.Append(CultureInfo.InvariantCulture, $" · <a href=\"{api}/metrics\">metrics</a>");
        if (job.HasCheckpoints) html.Append(CultureInfo.InvariantCulture, $" · <a href=\"{api}/checkpoints\">checkpoints</a>");
        html.Append(CultureInfo.InvariantCulture, $" · <a href=\"{api}/config\">config</a> · <a href=\"{api}/grid\">grid</a></p>\n");
        return End(html);
    }

    /// <summary>Name and already-encoded HTML value of each status row.</summary>
    private static IEnumerable<(string Name, string Html)> StatusRows(JobView job)
    {
        var summary = job.Summary;
        yield return ("State", $"<span id=\"state\" class=\"state-{H(summary.State.ToString())}\">{H(summary.State.ToString())}</span>");
        yield return ("Progress", Progress(summary.Progress, summary.Total));
        yield return ("Created (UTC)", Time(summary.CreatedAt));
        yield return ("Updated (UTC)", Time(summary.UpdatedAt));
        if (summary.FailureReason is { } failure) yield return ("Failure", H(failure));
        if (job.Training is { } training)
        {
            yield return ("Workload", H(training.Spec.Workload));
            yield return ("Step", $"{training.Step} of {training.Spec.Steps}");
            yield return ("Ranks", $"{training.Ranks.Count} of {H(training.Spec.DescribeRanks())} wanted: {H(string.Join(", ", training.Ranks.Select(r => $"{r.Device}@{r.SiloAddress}")))}");
            if (training.QueuePosition is { } place) yield return ("Queued", $"place {place} in the device queue");
            yield return ("Last loss", Number(training.LastMetrics?.Loss));
            yield return ("Last checkpoint", training.LastCheckpointStep is { } step ? step.ToString(CultureInfo.InvariantCulture) : "none");
            yield return ("Recoveries", training.Recoveries.ToString(CultureInfo.InvariantCulture));
            foreach (var metric in job.OnlineMetrics)
                yield return ($"Online {metric}", training.Evaluations.Count == 0 ? "none yet"
                    : H(string.Join(", ", training.Evaluations.Where(e => e.Metric == metric).Select(e => $"step {e.Step}: {(e.Error is null ? Number(e.Value) : "failed")}"))));
        }
        foreach (var row in JobPagesStatusRows.Of(job)) yield return row;
        if (job.Sampling is { } sampling)
        {
            yield return ("Workload", H(sampling.Spec.Workload));
            yield return ("Units", $"{sampling.UnitsDone} of {sampling.UnitsTotal}");
            yield return ("Samples", $"{sampling.SamplesDone} of {sampling.Spec.Samples}");
            yield return ("Samples / s", Number(sampling.SamplesPerSecond));
            if (sampling.Spec.SourceTrainingJobId is { } source)
            {
                var link = JobIds.IsValid(source) ? $"<a href=\"{H(JobUrl(source))}\">{H(source)}</a>" : H(source);
                yield return ("Source", $"{link} at step {H(sampling.Spec.SourceCheckpointStep?.ToString(CultureInfo.InvariantCulture) ?? "latest")}");
            }
            yield return ("Output", $"<code>{H(sampling.OutputLocation ?? "not yet")}</code>");
        }
    }

    private static bool IsActive(JobSummary job) => job.State is JobState.Pending or JobState.Running or JobState.Recovering;

    private static string Progress(long done, long total) => total > 0
        ? string.Create(CultureInfo.InvariantCulture, $"<progress value=\"{Math.Min(done, total)}\" max=\"{total}\"></progress> {done}/{total}")
        : done.ToString(CultureInfo.InvariantCulture);

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

    private static string Number(double? value) => value is { } v ? v.ToString("G6", CultureInfo.InvariantCulture) : "–";

    private static string Bytes(long bytes) => bytes >= 1 << 20
        ? (bytes / (double)(1 << 20)).ToString("0.0 'MiB'", CultureInfo.InvariantCulture)
        : (bytes / 1024.0).ToString("0.0 'KiB'", CultureInfo.InvariantCulture);

    private static StringBuilder Begin(string title, int? refreshSeconds)
    {
        var html = new StringBuilder("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        if (refreshSeconds is { } seconds) html.Append(CultureInfo.InvariantCulture, $"<meta http-equiv=\"refresh\" content=\"{seconds}\">\n");
        html.Append(CultureInfo.InvariantCulture, $"<title>{H(title)}</title>\n<style>{Style}</style>\n</head>\n<body>\n");
        html.Append("<nav><a href=\"/jobs\">Jobs</a><a href=\"/dashboard/\">Orleans dashboard</a><a href=\"/api/silo\">Silo JSON</a></nav>\n");
        return html;
    }

    private static string End(StringBuilder html) => html.Append("</body>\n</html>\n").ToString();
}
