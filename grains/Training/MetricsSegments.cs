using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Training;

/// <summary>
/// One sealed, never rewritten run of a training job's step metrics in blob storage:
/// <c>jobs/{job}/metrics/segment-g{generation}-b{base}-{first}-{last}.jsonl</c>, one <see cref="StepMetrics"/> per line.
/// <paramref name="Generation"/> is the group generation that recorded it and <paramref name="BaseStep"/> the step that
/// generation resumed from: a later generation's base cuts off every older entry past it (steps redone after a restore).
/// </summary>
public sealed record MetricsSegment(int Generation, long BaseStep, long FirstStep, long LastStep)
{
    public const string FilePrefix = "segment-";
    public const string Extension = ".jsonl";

    private static readonly JsonSerializerOptions Json = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The folder of a job's segments (the job id checked to name one folder).</summary>
    public static string FolderOf(string jobId) => $"jobs/{JobBlobNames.RequireJobId(jobId)}/metrics/";

    public string PathIn(string jobId) =>
        FormattableString.Invariant($"{FolderOf(jobId)}{FilePrefix}g{Generation:D6}-b{BaseStep:D12}-{FirstStep:D12}-{LastStep:D12}{Extension}");

    /// <summary>The segment a blob path names; null for any other blob in the folder.</summary>
    public static MetricsSegment? Parse(string path)
    {
        var name = path[(path.LastIndexOf('/') + 1)..];
        if (!name.StartsWith(FilePrefix + "g", StringComparison.Ordinal) || !name.EndsWith(Extension, StringComparison.Ordinal)) return null;
        var parts = name[(FilePrefix.Length + 1)..^Extension.Length].Split('-');
        if (parts.Length != 4 || !parts[1].StartsWith('b')) return null;
        return int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var generation)
            && long.TryParse(parts[1][1..], NumberStyles.None, CultureInfo.InvariantCulture, out var baseStep)
            && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            && long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            && first <= last
                ? new MetricsSegment(generation, baseStep, first, last)
                : null;
    }

    public static byte[] Serialize(IEnumerable<StepMetrics> metrics)
    {
        var text = new StringBuilder();
        foreach (var step in metrics) text.Append(JsonSerializer.Serialize(step, Json)).Append('\n');
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>The segment's entries; <see cref="InvalidDataException"/> naming the blob when a line is not a step's metrics.</summary>
    public static IReadOnlyList<StepMetrics> Deserialize(byte[] data, string path)
    {
        var entries = new List<StepMetrics>();
        var lines = Encoding.UTF8.GetString(data).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        for (var line = 0; line < lines.Length; line++)
        {
            try
            {
                entries.Add(JsonSerializer.Deserialize<StepMetrics>(lines[line], Json) ?? throw new JsonException("null entry"));
            }
            catch (JsonException error)
            {
                throw new InvalidDataException($"Metrics segment '{path}' line {line + 1} is not a step's metrics: {error.Message}", error);
            }
        }
        return entries;
    }

    /// <summary>
    /// The job's history from <paramref name="fromStep"/> on, one entry per step in step order: generations apply
    /// oldest first, each dropping older entries past its base step, then adding its own (segments, and for the
    /// <paramref name="current"/> generation the unsealed <paramref name="tail"/>). <paramref name="legacy"/> are entries
    /// kept in grain state before segments existed.
    /// </summary>
    public static List<StepMetrics> Merge(
        IReadOnlyList<(MetricsSegment Segment, IReadOnlyList<StepMetrics> Entries)> sealedSegments,
        IReadOnlyList<StepMetrics> legacy, (int Generation, long BaseStep) current, IReadOnlyList<StepMetrics> tail, long fromStep)
    {
        var history = new SortedDictionary<long, StepMetrics>();
        var generations = sealedSegments.Select(s => (s.Segment.Generation, s.Segment.BaseStep))
            .Append(current).Distinct().OrderBy(g => g.Generation).ThenBy(g => g.BaseStep);
        foreach (var (generation, baseStep) in generations)
        {
            foreach (var redone in history.Keys.Where(step => step > baseStep).ToList()) history.Remove(redone);
            var entries = sealedSegments.Where(s => s.Segment.Generation == generation && s.Segment.BaseStep == baseStep)
                .OrderBy(s => s.Segment.FirstStep).SelectMany(s => s.Entries);
            if (current == (generation, baseStep)) entries = entries.Concat(tail);
            foreach (var entry in entries) history[entry.Step] = entry;
        }
        // The coordinator cut these at every restore since; steps redone in segments win.
        foreach (var entry in legacy) history.TryAdd(entry.Step, entry);
        return history.Values.Where(entry => entry.Step >= fromStep).ToList();
    }
}
