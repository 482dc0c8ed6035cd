using RAE.GrainInterfaces;

namespace RAE.Client.Bench;

/// <summary>Turns the coordinator's per-step metrics into the means `bench cluster` reports.</summary>
public static class TrainingStatistics
{
    /// <summary>
    /// Pools the steps after <paramref name="warmupSteps"/> of every run. A run's wall time is from the completion of
    /// its last warm-up step to the completion of its last step, so the loop's work between steps counts.
    /// </summary>
    public static TrainingConfigurationMeasurement Summarize(int ranks, int threadsPerRank, IReadOnlyList<IReadOnlyList<StepMetrics>> runs, int warmupSteps)
    {
        if (warmupSteps < 1) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "At least one warm-up step is needed to time the first measured step.");
        double wall = 0, stepCall = 0, inside = 0, compute = 0, allReduce = 0, update = 0;
        var measured = 0;
        var finalLoss = double.NaN;
        foreach (var run in runs)
        {
            var ordered = run.OrderBy(m => m.Step).ToList();
            var start = ordered.LastOrDefault(m => m.Step == warmupSteps)
                ?? throw new InvalidOperationException($"A benchmark run has no metrics for its last warm-up step {warmupSteps}.");
            var steps = ordered.Where(m => m.Step > warmupSteps).ToList();
            if (steps.Count == 0) throw new InvalidOperationException("A benchmark run recorded no step after its warm-up.");
            wall += (steps[^1].CompletedAt - start.CompletedAt).TotalSeconds;
            foreach (var step in steps)
            {
                stepCall += step.StepSeconds;
                // The coordinator's own split: its step call minus the busiest rank's compute + all-reduce + update.
                inside += step.CoordinationSeconds;
                compute += step.ComputeSeconds;
                allReduce += step.AllReduceSeconds;
                update += step.ApplySeconds;
            }
            measured += steps.Count;
            finalLoss = steps[^1].Loss;
        }
        var period = wall / measured;
        var insideOverhead = inside / measured;
        var between = period - stepCall / measured;
        var overhead = insideOverhead + between;
        return new TrainingConfigurationMeasurement(ranks, threadsPerRank, measured, 1 / period, period,
            compute / measured, allReduce / measured, update / measured, insideOverhead, between, overhead, overhead / period, finalLoss);
    }

    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("The median of no values is undefined.", nameof(values));
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
