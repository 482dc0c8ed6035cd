using System.Diagnostics;

namespace RAE.Client.Bench;

/// <summary>
/// How much of the machine's time a thread that never blocks still loses: one spinning thread per core reads the clock
/// in a tight loop and records every gap between two reads longer than <see cref="SchedulingNoise.ThresholdSeconds"/>,
/// time it was runnable but did not run (preempted by other threads of the guest, or its vCPU descheduled by the host: a
/// VM's steal, which a Firecracker guest does not report in /proc/stat). Measured before any silo runs, it is the noise
/// floor of a synchronous data-parallel step: every all-reduce waits for the later rank, so each rank's gaps add up.
/// </summary>
public static class SchedulingNoiseProbe
{
    public static SchedulingNoise Measure(TimeSpan duration, TimeSpan threshold, int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (duration <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(duration), duration, "The probe needs a positive duration.");
        if (threshold <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "Gaps are counted above a positive threshold.");
        var thresholdTicks = (long)(threshold.TotalSeconds * Stopwatch.Frequency);
        var durationTicks = (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var gaps = new List<long>[threads];
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(index => new Thread(() =>
        {
            var mine = new List<long>(4096);
            start.SignalAndWait();
            var last = Stopwatch.GetTimestamp();
            var end = last + durationTicks;
            while (last < end)
            {
                var now = Stopwatch.GetTimestamp();
                if (now - last > thresholdTicks) mine.Add(now - last);
                last = now;
            }
            gaps[index] = mine;
        }) { IsBackground = true, Name = $"rae-noise-{index}" }).ToList();
        workers.ForEach(worker => worker.Start());
        workers.ForEach(worker => worker.Join());

        var all = gaps.SelectMany(g => g).Select(ticks => (double)ticks / Stopwatch.Frequency).OrderBy(s => s).ToList();
        var lost = all.Sum();
        return new SchedulingNoise(threads, duration.TotalSeconds, threshold.TotalSeconds, all.Count, lost, lost / (threads * duration.TotalSeconds),
            all.Count == 0 ? 0 : all[^1], all.Count == 0 ? 0 : all[(int)(0.9 * (all.Count - 1))]);
    }
}

/// <summary>What <see cref="SchedulingNoiseProbe"/> saw: <see cref="Gaps"/> gaps above the threshold over all threads,
/// <see cref="LostSeconds"/> in all (<see cref="LostFraction"/> of the threads' time), the longest and the 90th percentile gap.</summary>
public sealed record SchedulingNoise(int Threads, double Seconds, double ThresholdSeconds, int Gaps, double LostSeconds, double LostFraction,
    double LongestGapSeconds, double Percentile90GapSeconds);
