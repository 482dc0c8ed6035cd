using RAE.Client.Cluster;
using RAE.GrainInterfaces;
using RAE.Grains.Sampling;

namespace RAE.Cluster.Tests.Chaos;

/// <summary>
/// The pinned sampling job (<c>rae sample --from-job JOB@8</c>): it samples from step <see cref="PinnedStep"/> of the
/// training job that runs beside it, a checkpoint that keep-last-3 retention deletes at the commit of step 20 unless the
/// pin holds it. A watch reads the source catalog and the pinned blob while the sampling runs.
/// </summary>
internal sealed partial class ChaosWorkload
{
    public const long PinnedStep = 2 * CheckpointInterval;
    private static readonly TimeSpan PinWatchInterval = TimeSpan.FromMilliseconds(250);

    private IReadOnlyList<byte[]> _referencePinnedUnits = [];

    /// <summary>The training job submitted last (null before the first).</summary>
    public string? CurrentTrainingJobId { get; private set; }

    /// <summary>
    /// Waits until <paramref name="trainingJobId"/> commits <see cref="PinnedStep"/>, starts a sampling job pinned to it
    /// and watches the pin until the job ends; null when the training job had moved past the step (retention took it
    /// before the sampling job could pin it) or ended without it.
    /// </summary>
    public async Task<PinnedSamplingOutcome?> RunPinnedSamplingAsync(string trainingJobId, int wave)
    {
        var deadline = DateTime.UtcNow + JobTimeout;
        while (true)
        {
            var listed = await CallAsync(() => Client.ListCheckpointsAsync(trainingJobId));
            if (listed.Any(c => c.Step == PinnedStep)) break;
            if (listed.Any(c => c.Step > PinnedStep + 2 * CheckpointInterval) || DateTime.UtcNow > deadline) return null;
            await Task.Delay(PinWatchInterval);
        }
        var jobId = $"sample-pinned-{wave}-{Guid.NewGuid().ToString("N")[..8]}";
        var spec = new SamplingJobSpec
        {
            Workload = SamplingPlan.Workload,
            SourceTrainingJobId = trainingJobId,
            SourceCheckpointStep = PinnedStep,
            Samples = Samples,
            UnitSize = UnitSize,
            Classes = 10,
            Seed = 7,
            // Long enough to span the training job's commits past the step that retention would otherwise delete.
            UnitDelay = TimeSpan.FromSeconds(2),
        };
        var missed = false;
        await SubmitAsync(async () =>
        {
            try
            {
                return await Client.StartSamplingAsync(spec, jobId);
            }
            catch (RaeJobException started) when (started.Message.Contains("already started", StringComparison.Ordinal))
            {
                return jobId;
            }
            catch (RaeJobException gone) when (gone.Message.Contains($"no committed checkpoint at step {PinnedStep}", StringComparison.Ordinal))
            {
                missed = true;
                return jobId;
            }
        });
        if (missed)
        {
            log.WriteLine($"wave {wave}: pinned sampling missed step {PinnedStep} of training job {trainingJobId}");
            return null;
        }
        // Read before the catalog: a submission whose answer was lost (the client's 30 s timeout under chaos) is retried and
        // finds the job already started, and by then it may have finished and released its pin, so retention rightly
        // removed the step. Only a job still running when the catalog is read must find its step there.
        var endedBeforeListing = IsEnded((await CallAsync(() => Client.GetSamplingStatusAsync(jobId))).State);
        var pinned = (await CallAsync(() => Client.ListCheckpointsAsync(trainingJobId))).FirstOrDefault(c => c.Step == PinnedStep);
        log.WriteLine($"wave {wave}: pinned sampling job {jobId} started on {pinned?.Location ?? (endedBeforeListing ? "(ended and released its pin before its start was confirmed)" : "(step gone already)")}");
        var violations = new List<string>();
        if (pinned is null && !endedBeforeListing) violations.Add($"step {PinnedStep} of {trainingJobId} left the catalog right after the sampling job pinned it");
        long newestSeen = 0;
        var status = await WaitForEndAsync(async () =>
        {
            var current = await Client.GetSamplingStatusAsync(jobId);
            if (current.State is JobState.Pending or JobState.Running && pinned is not null)
            {
                var catalog = await Client.ListCheckpointsAsync(trainingJobId);
                var blobThere = await blobs.ExistsAsync(pinned.Location);
                // The job unpins when it ends, and retention then rightly removes the step: only a job that is still the same
                // running job after both reads (not ended, not resumed between them) held its pin while they were made.
                var after = await Client.GetSamplingStatusAsync(jobId);
                if (after.State is JobState.Pending or JobState.Running && after.Resumptions == current.Resumptions)
                {
                    newestSeen = Math.Max(newestSeen, catalog.Count == 0 ? 0 : catalog.Max(c => c.Step));
                    if (catalog.All(c => c.Step != PinnedStep))
                        violations.Add($"catalog of {trainingJobId} lists [{string.Join(", ", catalog.Select(c => c.Step))}] while {jobId} holds step {PinnedStep}");
                    if (!blobThere)
                        violations.Add($"blob {pinned.Location} is gone while {jobId} samples from it");
                }
                current = after;
            }
            return current;
        }, s => IsEnded(s.State), Describe, $"pinned sampling job {jobId}");
        log.WriteLine($"wave {wave}: pinned sampling job {jobId} ended: {Describe(status)}; source newest step seen {newestSeen}");
        return new PinnedSamplingOutcome(jobId, status, trainingJobId, newestSeen, violations.Distinct().ToList());
    }

    /// <summary>The pin held while the job ran, every unit once, with the bytes of the undisturbed pinned sampling.</summary>
    public async Task VerifyAsync(PinnedSamplingOutcome outcome)
    {
        VerifyPins(outcome);
        var context = $"pinned sampling job {outcome.JobId}: {Describe(outcome.Status)}";
        var units = await UnitBytesAsync(outcome.Status);
        Assert.Equal(_referencePinnedUnits.Count, units.Count);
        for (var u = 0; u < units.Count; u++)
            Assert.True(units[u].AsSpan().SequenceEqual(_referencePinnedUnits[u]), $"{context}: unit {u} differs from the undisturbed pinned sampling's");
    }

    private static void VerifyPins(PinnedSamplingOutcome outcome)
    {
        var context = $"pinned sampling job {outcome.JobId} (step {PinnedStep} of {outcome.SourceJobId}): {Describe(outcome.Status)}";
        Assert.True(outcome.Status.State == JobState.Completed, context);
        Assert.True(outcome.PinViolations.Count == 0, $"{context}: retention deleted the pinned checkpoint: {string.Join("; ", outcome.PinViolations)}");
    }
}
