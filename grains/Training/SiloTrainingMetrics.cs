using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using RAE.GrainInterfaces;

namespace RAE.Grains.Training;

/// <summary>
/// The latest step metrics of the jobs coordinated on this silo, published as observable gauges on the Orleans meter
/// (taken from <see cref="OrleansInstruments"/>, so they show among the dashboard's silo counters; a separately
/// created "Microsoft.Orleans" meter would be ignored). Tagged with the job id.
/// </summary>
public sealed class SiloTrainingMetrics
{
    public const string LossInstrument = "rae-training-loss";
    public const string SamplesPerSecondInstrument = "rae-training-samples-per-second";
    public const string StepInstrument = "rae-training-step";

    private readonly ConcurrentDictionary<string, StepMetrics> _latest = new(StringComparer.Ordinal);

    public SiloTrainingMetrics(OrleansInstruments instruments)
    {
        instruments.Meter.CreateObservableGauge(LossInstrument, () => Observe(m => m.Loss));
        instruments.Meter.CreateObservableGauge(SamplesPerSecondInstrument, () => Observe(m => m.SamplesPerSecondPerRank.Sum()), unit: "{sample}/s");
        instruments.Meter.CreateObservableGauge(StepInstrument, () => Observe(m => m.Step));
    }

    public void Record(string jobId, StepMetrics metrics) => _latest[jobId] = metrics;

    private IEnumerable<Measurement<double>> Observe(Func<StepMetrics, double> value) =>
        _latest.Select(entry => new Measurement<double>(value(entry.Value), new KeyValuePair<string, object?>("job", entry.Key)));
}
