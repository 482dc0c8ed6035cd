using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Training;

/// <summary>
/// What the coordinator keeps of its job's metrics in grain state: a bounded summary. The history lives in blob storage
/// as sealed <see cref="MetricsSegment"/>s; the steps since the last seal are held in memory only (a lost coordinator
/// restores a checkpoint, and every checkpoint seals first, so nothing it resumes after is missing).
/// </summary>
[GenerateSerializer]
public sealed class TrainingMetricsSummary
{
    public const int RecentBound = 32;

    /// <summary>The last <see cref="RecentBound"/> steps, oldest first.</summary>
    [Id(0)] public List<StepMetrics> Recent { get; set; } = [];
    [Id(1)] public double? MinLoss { get; set; }
    [Id(2)] public double? MaxLoss { get; set; }
    /// <summary>The last step written to a sealed segment.</summary>
    [Id(3)] public long SealedThroughStep { get; set; }
    [Id(4)] public int SealedSegments { get; set; }

    public void Add(StepMetrics metrics)
    {
        Recent.Add(metrics);
        if (Recent.Count > RecentBound) Recent.RemoveRange(0, Recent.Count - RecentBound);
        if (!double.IsFinite(metrics.Loss)) return;
        MinLoss = Math.Min(MinLoss ?? metrics.Loss, metrics.Loss);
        MaxLoss = Math.Max(MaxLoss ?? metrics.Loss, metrics.Loss);
    }

    /// <summary>Starts over from a whole history (after a restore dropped the steps past it).</summary>
    public void Rebuild(IReadOnlyList<StepMetrics> history)
    {
        (Recent, MinLoss, MaxLoss) = ([], null, null);
        foreach (var metrics in history) Add(metrics);
    }
}

public sealed partial class TrainingCoordinatorGrain
{
    /// <summary>Steps recorded between seals at most (a segment is also sealed before every checkpoint).</summary>
    public const int MetricsSegmentSteps = 256;

    private readonly List<StepMetrics> _unsealedMetrics = [];

    private StepMetrics? LastMetrics => State.MetricsSummary.Recent.LastOrDefault() ?? State.LegacyMetrics.LastOrDefault();

    private void RecordMetrics(StepMetrics metrics)
    {
        _unsealedMetrics.Add(metrics);
        State.MetricsSummary.Add(metrics);
    }

    private bool MetricsSegmentDue => _unsealedMetrics.Count >= MetricsSegmentSteps;

    /// <summary>Writes the steps recorded since the last seal as one new segment (never rewritten).</summary>
    private async Task SealMetricsAsync()
    {
        if (_unsealedMetrics.Count == 0) return;
        var entries = _unsealedMetrics.ToList();
        var segment = new MetricsSegment(State.Generation, State.MetricsBaseStep, entries[0].Step, entries[^1].Step);
        await blobs.PutBytesAsync(segment.PathIn(JobId), MetricsSegment.Serialize(entries));
        _unsealedMetrics.RemoveRange(0, entries.Count);
        State.MetricsSummary.SealedThroughStep = entries[^1].Step;
        State.MetricsSummary.SealedSegments++;
    }

    /// <summary>At the job's end: the steps since the last checkpoint are kept if storage takes them; the end does not wait on it.</summary>
    private async Task SealMetricsQuietlyAsync()
    {
        try
        {
            await SealMetricsAsync();
        }
        catch (Exception error) when (error is BlobStoreException or IOException)
        {
            LogSiloSkipped(error, "metrics segment");
        }
    }

    /// <summary>
    /// The group (generation <see cref="TrainingJobState.Generation"/>) resumed from <paramref name="restoredStep"/>: steps
    /// past it are dropped from memory, and readers drop them from older segments; the summary is rebuilt when it held any.
    /// </summary>
    private async Task TruncateMetricsAsync(long restoredStep)
    {
        State.MetricsBaseStep = restoredStep;
        _unsealedMetrics.RemoveAll(m => m.Step > restoredStep);
        State.LegacyMetrics.RemoveAll(m => m.Step > restoredStep);
        var summary = State.MetricsSummary;
        if (summary.Recent.Any(m => m.Step > restoredStep) || summary.SealedThroughStep > restoredStep)
        {
            summary.Rebuild(await ReadMetricsAsync(0));
            summary.SealedThroughStep = Math.Min(summary.SealedThroughStep, restoredStep);
        }
    }

    private async Task<List<StepMetrics>> ReadMetricsAsync(long fromStep)
    {
        var tail = _unsealedMetrics.ToList();
        var current = (State.Generation, State.MetricsBaseStep);
        var segments = new List<(MetricsSegment, IReadOnlyList<StepMetrics>)>();
        await foreach (var blob in blobs.ListAsync(MetricsSegment.FolderOf(JobId)))
        {
            if (MetricsSegment.Parse(blob.Path) is not { } segment) continue;
            // Segments before fromStep are not read: their names alone say which steps later generations redid.
            var entries = segment.LastStep >= fromStep ? MetricsSegment.Deserialize((await blobs.GetAsync(blob.Path)).Data, blob.Path) : [];
            segments.Add((segment, entries));
        }
        return MetricsSegment.Merge(segments, State.LegacyMetrics, current, tail, fromStep);
    }
}
