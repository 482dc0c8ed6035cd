using RAE.GrainInterfaces;
using RAE.Grains.Training;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// A training job's metrics live in sealed blob segments with a bounded summary in the coordinator's state: the state
/// does not grow with the steps, the curve read back is the job's whole history, and after a restore the steps redone
/// replace those recorded past the restored checkpoint (the curve equals an undisturbed run's).
/// </summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class MetricsSegmentTests(FileSystemStorageCluster cluster)
{
    private IJobRegistryGrain Registry => cluster.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task PersistedStateStaysBoundedAndTheCurveComesBackWhole()
    {
        var shortJob = await RunAsync(TornCheckpointWriteTests.Spec(steps: 80, interval: 40));
        var longJob = await RunAsync(TornCheckpointWriteTests.Spec(steps: 400, interval: 40));

        // 320 more steps would add tens of kilobytes if every step were kept in the state; the summary keeps a fixed number.
        var shortState = StateFileSize(shortJob);
        var longState = StateFileSize(longJob);
        Assert.True(longState <= shortState + 256, $"the state grew from {shortState} bytes (80 steps) to {longState} bytes (400 steps)");

        var curve = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(longJob).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, 400).Select(step => (long)step), curve.Select(m => m.Step));
        var stored = await SegmentsAsync(longJob);
        Assert.Equal(curve.Select(Point), stored.SelectMany(s => s.Entries).Select(Point));
        Assert.All(stored, s => Assert.True(s.Segment.LastStep - s.Segment.FirstStep < TrainingCoordinatorGrain.MetricsSegmentSteps));
        // The same steps of the shorter job (sealed at other boundaries) give the same curve.
        var shortCurve = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(shortJob).GetMetrics(0);
        Assert.Equal(shortCurve.Select(Point), curve.Take(80).Select(Point));
        Assert.Equal(curve.Skip(350).Select(Point), (await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(longJob).GetMetrics(351)).Select(Point));
        Assert.Equal(Point(curve[^1]), Point((await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(longJob).GetStatus()).LastMetrics!));
    }

    [Fact]
    public async Task StepsRedoneAfterARestoreReplaceTheOnesRecordedPastTheCheckpoint()
    {
        var spec = TornCheckpointWriteTests.Spec(steps: 12, interval: 4);
        static bool IsStep8Checkpoint(string path) => path.StartsWith("checkpoints/", StringComparison.Ordinal) && path.Contains("/step-000000008.", StringComparison.Ordinal);
        string restored;
        using (cluster.Store.FailFrom(IsStep8Checkpoint, IsStep8Checkpoint, failures: 1))
        {
            restored = await RunAsync(spec);
        }
        var status = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(restored).GetStatus();
        Assert.Equal(4, status.RestoredFromStep);

        // Generation 1 sealed steps 5..8 before its step-8 checkpoint failed; generation 2 redid them from step 4.
        var segments = (await SegmentsAsync(restored)).Select(s => s.Segment).ToList();
        Assert.Contains(segments, s => s.Generation == 1 && s.LastStep == 8);
        Assert.Contains(segments, s => s.Generation == 2 && s.BaseStep == 4 && s.FirstStep == 5);

        var undisturbed = await RunAsync(spec);
        var expected = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(undisturbed).GetMetrics(0);
        var actual = await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(restored).GetMetrics(0);
        Assert.Equal(Enumerable.Range(1, 12).Select(step => (long)step), actual.Select(m => m.Step));
        Assert.Equal(expected.Select(Point), actual.Select(Point));
        Assert.Equal(expected.Skip(5).Select(Point), (await cluster.Grains.GetGrain<ITrainingCoordinatorGrain>(restored).GetMetrics(6)).Select(Point));
    }

    [Fact]
    public void MergeDropsOlderGenerationsPastEachRestoreAndNamesRoundTrip()
    {
        static StepMetrics At(long step, double loss) => new() { Step = step, Loss = loss };
        var first = new MetricsSegment(1, 0, 1, 6);
        var redone = new MetricsSegment(3, 4, 5, 7);
        Assert.Equal(first, MetricsSegment.Parse(first.PathIn("job-a")));
        Assert.Equal(redone, MetricsSegment.Parse("prefix/" + redone.PathIn("job-a")));
        Assert.Null(MetricsSegment.Parse("jobs/job-a/metrics/notes.jsonl"));
        var entries = new[] { At(1, 1), At(2, 2), At(3, 3), At(4, 4), At(5, 50), At(6, 60) };
        var roundTrip = MetricsSegment.Deserialize(MetricsSegment.Serialize(entries), "x");
        Assert.Equal(entries.Select(Point), roundTrip.Select(Point));

        // Generation 2 restored step 2 and recorded nothing sealed yet; generation 3 restored step 4 and redid 5..7; 8 is unsealed.
        var merged = MetricsSegment.Merge(
            [(first, entries), (redone, [At(5, 5), At(6, 6), At(7, 7)])], [], (3, 4), [At(8, 8)], fromStep: 0);
        Assert.Equal([1.0, 2, 3, 4, 5, 6, 7, 8], merged.Select(m => m.Loss));
        // A group that resumed from step 3 and has recorded nothing yet hides every step past 3.
        Assert.Equal([1.0, 2, 3], MetricsSegment.Merge([(first, entries)], [], (2, 3), [], 0).Select(m => m.Loss));
    }

    private static (long, double, double, double) Point(StepMetrics m) => (m.Step, m.Loss, m.LearningRate, m.GradientNorm);

    private async Task<string> RunAsync(TrainingJobSpec spec)
    {
        var jobId = await Registry.SubmitTraining(spec);
        var status = await cluster.WaitForEndAsync(jobId);
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        return jobId;
    }

    private long StateFileSize(string jobId)
    {
        var files = Directory.GetFiles(Path.Combine(cluster.DataFolder, "grain-state"), $"training-*{jobId}*.state", SearchOption.AllDirectories);
        return new FileInfo(Assert.Single(files)).Length;
    }

    private async Task<List<(MetricsSegment Segment, IReadOnlyList<StepMetrics> Entries)>> SegmentsAsync(string jobId)
    {
        var segments = new List<(MetricsSegment, IReadOnlyList<StepMetrics>)>();
        await foreach (var blob in cluster.Store.Inner.ListAsync(MetricsSegment.FolderOf(jobId)))
        {
            var segment = MetricsSegment.Parse(blob.Path) ?? throw new InvalidDataException($"unexpected blob {blob.Path}");
            segments.Add((segment, MetricsSegment.Deserialize((await cluster.Store.Inner.GetAsync(blob.Path)).Data, blob.Path)));
        }
        return segments.OrderBy(s => s.Item1.Generation).ThenBy(s => s.Item1.FirstStep).ToList();
    }
}
