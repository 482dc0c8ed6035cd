using System.Globalization;
using RAE.GrainInterfaces;
using static RAE.Silo.Web.JobPagesHtml;

namespace RAE.Silo.Web;

/// <summary>The status rows of evaluation and encode job pages (name and already-encoded HTML value).</summary>
internal static class JobPagesStatusRows
{
    /// <summary>At most this many skipped files are listed on a page; the JSON has them all.</summary>
    public const int MaxSkippedShown = 20;

    public static IEnumerable<(string Name, string Html)> Of(JobView job)
    {
        if (job.Evaluation is { } evaluation)
        {
            yield return ("Metric", H(EvaluationMetrics.NameOf(evaluation.Spec.Metric)));
            yield return ("Units", $"<span id=\"units\">{evaluation.UnitsDone} of {evaluation.UnitsTotal}</span>");
            yield return ("Samples", H(evaluation.Spec.Samples.ToString()));
            yield return ("Reference", H(evaluation.Spec.Reference.ToString()));
            if (evaluation.Result is { } result)
            {
                yield return ("Value", $"<span id=\"metric-value\">{H(result.Value.ToString("G8", CultureInfo.InvariantCulture))}</span> ({H(result.Metric)})");
                yield return ("Images", $"{result.SampleImages} samples, {result.ReferenceImages} reference");
                yield return ("Reference statistics", $"<code>{H(result.ReferenceStatistics ?? "computed")}</code>{(result.ReferenceStatisticsReused ? " (reused)" : "")}");
            }
            else yield return ("Value", "<span id=\"metric-value\">not yet</span>");
            yield return ("Resumptions", evaluation.Resumptions.ToString(CultureInfo.InvariantCulture));
        }
        if (job.Encoding is { } encoding)
        {
            yield return ("Dataset", $"<code>{H(encoding.Spec.Dataset)}</code> to <code>latents/{H(encoding.Spec.LatentName)}</code>");
            yield return ("Shards", $"<span id=\"shards\">{encoding.ShardsDone} of {encoding.ShardsTotal}</span>");
            yield return ("Images", $"{encoding.ImagesDone} of {encoding.ImagesTotal}");
            yield return ("Images / s", H(encoding.ImagesPerSecond.ToString("G4", CultureInfo.InvariantCulture)));
            var skipped = encoding.Skipped.Take(MaxSkippedShown).Select(file => $"{H(file.Name)}: {H(file.Reason)}");
            var more = encoding.Skipped.Count > MaxSkippedShown ? $"<br>and {encoding.Skipped.Count - MaxSkippedShown} more (see the JSON)" : "";
            yield return ("Skipped files", $"<span id=\"skipped\">{encoding.Skipped.Count}</span>{(encoding.Skipped.Count > 0 ? "<br>" + string.Join("<br>", skipped) + more : "")}");
            yield return ("Output", $"<code>{H(encoding.OutputLocation ?? "not yet")}</code>");
            yield return ("Resumptions", encoding.Resumptions.ToString(CultureInfo.InvariantCulture));
        }
    }
}
