using System.Diagnostics;
using System.Globalization;
using RAE.GrainInterfaces;

namespace RAE.Grains.Training;

/// <summary>
/// Steps per call to the ranks. A step's call is two Orleans messages per rank and hand-overs between threads on both
/// ends; for a step of seconds that is nothing, for a step of milliseconds (tiny-mlp: ~15-25 ms on two cores) it was
/// 1-3 ms of every step. Once a step has shown its length, the coordinator asks for a window of steps that lasts about
/// <see cref="StepWindowTarget"/> (at most <see cref="MaxStepWindow"/>): the ranks run them back to back, synchronised by
/// their all-reduces as in any data-parallel loop, and answer with every step's result. A window never passes a step
/// that is due for a checkpoint (or an online evaluation, which reads one) or the last step, so the coordinator
/// checkpoints exactly where it did with one step per call and every step's metrics are recorded as before. A failure
/// anywhere in a window fails the window: the group re-forms from the last checkpoint as for a failed step.
/// </summary>
public sealed partial class TrainingCoordinatorGrain
{
    private static readonly TimeSpan StepWindowTarget = TimeSpan.FromMilliseconds(200);
    private const int MaxStepWindow = 32;

    /// <summary>Online sampling reads the step's committed checkpoint, so an evaluation step is always checkpointed.</summary>
    private static bool CheckpointDue(TrainingJobSpec spec, long step) =>
        step == spec.Steps || (spec.CheckpointInterval > 0 && step % spec.CheckpointInterval == 0) || SamplesOnline(spec, step);

    /// <summary>How many steps from <paramref name="first"/> the next call runs: 1 until a step has been timed.</summary>
    private int StepWindow(TrainingJobSpec spec, long first)
    {
        if (LastMetrics is not { StepSeconds: > 0 } last) return 1;
        var length = (int)Math.Clamp(StepWindowTarget.TotalSeconds / last.StepSeconds, 1, MaxStepWindow);
        for (var step = first; step < first + length; step++)
            if (step >= spec.Steps || CheckpointDue(spec, step)) return (int)(step - first + 1);
        return length;
    }

    /// <summary>Runs the next window on every rank of the group; the steps every rank ran, in order.</summary>
    private async Task<IReadOnlyList<RanStep>> RunWindowAsync(TrainingJobSpec spec, long first)
    {
        var count = StepWindow(spec, first);
        var clock = Stopwatch.StartNew();
        using var cancellation = new CancellationTokenSource();
        _stepCancellation = cancellation;
        RankStepResult[][] perRank;
        try
        {
            if (Cancelling || _deactivating) cancellation.Cancel();
            var members = _group;
            if (count == 1)
            {
                var results = await WhenAllOrAbortAsync(members, members.Select(rank => rank.RunStep(JobId, first, cancellation.Token)).ToList());
                return [new RanStep(first, results, clock.Elapsed.TotalSeconds, 1, DateTimeOffset.UtcNow)];
            }
            perRank = await WhenAllOrAbortAsync(members, members.Select(rank => rank.RunSteps(JobId, first, count, cancellation.Token)).ToList());
        }
        finally
        {
            _stepCancellation = null;
        }
        // Every rank skips the same non-finite step and stops there; past the shortest run no step ran everywhere.
        var ran = perRank.Min(results => results.Length);
        var steps = new RanStep[ran];
        // Inside a window a step lasts its ranks' mean own step time (the calls' messages are the window's): ranks leave each
        // all-reduce together, so each rank's steps add up to the window, while the slowest rank changes from step to step
        // and the sum of per-step maxima would exceed it. A step completed that long before the next one did; the last
        // completed when the answers were in.
        var completedAt = DateTimeOffset.UtcNow;
        for (var index = ran - 1; index >= 0; index--)
        {
            var results = perRank.Select(r => r[index]).ToArray();
            if (results.Any(r => r.Step != first + index))
                throw new InvalidOperationException($"Job '{JobId}': a rank answered step(s) {string.Join(", ", results.Select(r => r.Step))} for step {first + index} of a window from step {first}.");
            var seconds = results.Average(r => r.WallSeconds);
            steps[index] = new RanStep(first + index, results, seconds, count, completedAt);
            completedAt -= TimeSpan.FromSeconds(seconds);
        }
        return steps;
    }

    /// <summary>Every rank's result of one step, how long the step took (the coordinator's call for a window of one, the
    /// ranks' mean own step time in a longer window) and when it completed.</summary>
    private sealed record RanStep(long Step, RankStepResult[] Results, double Seconds, int StepsPerCall, DateTimeOffset CompletedAt)
    {
        /// <summary>The step's metrics; <see cref="NonFiniteStepException"/> when its loss or gradients were not finite.</summary>
        public StepMetrics ToMetrics(long? lastCheckpointStep)
        {
            var ordered = Results.OrderBy(r => r.Rank).ToList();
            double lossSum = 0;
            foreach (var result in ordered) lossSum += result.Loss;
            var loss = lossSum / ordered.Count;
            var skipped = ordered.FirstOrDefault(r => r.NonFinite is not null);
            if (skipped is not null || !double.IsFinite(loss) || !double.IsFinite(ordered[0].GradientNorm))
            {
                var reason = skipped?.NonFinite
                    ?? $"step {Step}: non-finite loss/gradient norm (loss {loss.ToString(CultureInfo.InvariantCulture)}, gradient norm {ordered[0].GradientNorm.ToString(CultureInfo.InvariantCulture)})";
                var kept = lastCheckpointStep is { } last and > 0 ? $"the last checkpoint is step {last}" : "no checkpoint was written";
                throw new NonFiniteStepException($"{reason}; the job stops without checkpointing this step ({kept}).");
            }
            var busiest = ordered.Max(r => r.ComputeSeconds + r.AllReduceSeconds + r.ApplySeconds);
            return new StepMetrics
            {
                Step = Step,
                Loss = loss,
                LearningRate = ordered[0].LearningRate,
                GradientNorm = ordered[0].GradientNorm,
                Details = MeanDetails(ordered),
                StepSeconds = Seconds,
                SamplesPerSecondPerRank = ordered.Select(r => r.Samples / Math.Max(Seconds, 1e-9)).ToList(),
                Ranks = ordered.Count,
                CoordinationSeconds = Math.Max(0, Seconds - busiest),
                AllReduceSeconds = ordered.Max(r => r.AllReduceSeconds),
                ComputeSeconds = ordered.Max(r => r.ComputeSeconds),
                ApplySeconds = ordered.Max(r => r.ApplySeconds),
                CompletedAt = CompletedAt,
                StepsPerCall = StepsPerCall,
            };
        }

        /// <summary>A multi-phase workload's per-step values, averaged over the ranks in rank order; null when no rank reports any.</summary>
        private static IReadOnlyDictionary<string, double>? MeanDetails(IReadOnlyList<RankStepResult> ordered)
        {
            if (ordered.All(r => r.Details is null)) return null;
            return ordered.SelectMany(r => r.Details ?? new Dictionary<string, double>()).GroupBy(pair => pair.Key, StringComparer.Ordinal)
                .ToDictionary(group => group.Key, group => group.Sum(pair => pair.Value) / group.Count(), StringComparer.Ordinal);
        }
    }
}
