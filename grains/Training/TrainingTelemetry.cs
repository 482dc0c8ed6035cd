using System.Diagnostics.Metrics;

namespace RAE.Grains.Training;

/// <summary>Training metrics as standard .NET instruments (meter "RAE.Training"), for OpenTelemetry and dotnet-counters.</summary>
public static class TrainingTelemetry
{
    public const string MeterName = "RAE.Training";

    private static readonly Meter Meter = new(MeterName);
    public static readonly Histogram<double> Loss = Meter.CreateHistogram<double>("rae.training.loss");
    public static readonly Histogram<double> StepSeconds = Meter.CreateHistogram<double>("rae.training.step_time", unit: "s");
    public static readonly Histogram<double> SamplesPerSecond = Meter.CreateHistogram<double>("rae.training.samples_per_second", unit: "{sample}/s");
    public static readonly Counter<long> Steps = Meter.CreateCounter<long>("rae.training.steps", unit: "{step}");
}
