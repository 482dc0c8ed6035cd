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
    /// <summary>The named values a workload reports per step beyond the loss (Stage 1: losses, λ, discriminator accuracy and
    /// logits), tagged with the job and the value's name.</summary>
    public const string DetailInstrument = "rae-training-detail";

    private readonly ConcurrentDictionary<string, StepMetrics> _latest = new(StringComparer.Ordinal);

    public SiloTrainingMetrics(OrleansInstruments instruments)
    {
        instruments.Meter.CreateObservableGauge(LossInstrument, () => Observe(m => m.Loss));
        instruments.Meter.CreateObservableGauge(SamplesPerSecondInstrument, () => Observe(m => m.SamplesPerSecondPerRank.Sum()), unit: "{sample}/s");
        instruments.Meter.CreateObservableGauge(StepInstrument, () => Observe(m => m.Step));
        instruments.Meter.CreateObservableGauge(DetailInstrument, ObserveDetails);
    }

    public void Record(string jobId, StepMetrics metrics) => _latest[jobId] = metrics;

    private IEnumerable<Measurement<double>> ObserveDetails() =>
        _latest.SelectMany(entry => (entry.Value.Details ?? new Dictionary<string, double>()).Select(detail => new Measurement<double>(detail.Value,
            new KeyValuePair<string, object?>("job", entry.Key), new KeyValuePair<string, object?>("value", detail.Key))));

    private IEnumerable<Measurement<double>> Observe(Func<StepMetrics, double> value) =>
        _latest.Select(entry => new Measurement<double>(value(entry.Value), new KeyValuePair<string, object?>("job", entry.Key)));
}
