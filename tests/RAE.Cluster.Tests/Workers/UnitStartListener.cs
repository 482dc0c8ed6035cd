using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace RAE.Cluster.Tests.Workers;

/// <summary>Completes a task per job when a worker reports (on the given counter, tag <c>job</c>) that one of its units began.</summary>
public sealed class UnitStartListener : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _started = new(StringComparer.Ordinal);

    public UnitStartListener(string meterName, string instrumentName)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meterName && instrument.Name == instrumentName) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "job" && tag.Value is string job) Started(job).TrySetResult();
        });
        _listener.Start();
    }

    /// <summary>Waits until a unit of <paramref name="jobId"/> began; the deadline only keeps a broken run from hanging.</summary>
    public async Task WaitForAsync(string jobId)
    {
        try
        {
            await Started(jobId).Task.WaitAsync(TimeSpan.FromMinutes(2));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"No unit of job {jobId} began on a worker.");
        }
    }

    private TaskCompletionSource Started(string jobId) =>
        _started.GetOrAdd(jobId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public void Dispose() => _listener.Dispose();
}
