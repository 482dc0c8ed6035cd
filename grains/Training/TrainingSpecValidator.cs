using RAE.GrainInterfaces;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage2;

namespace RAE.Grains.Training;

public static class TrainingSpecValidator
{
    /// <summary>Throws <see cref="RaeJobException"/> naming every bad field of the spec.</summary>
    public static void Validate(TrainingJobSpec? spec, IEnumerable<string> knownWorkloads)
    {
        if (spec is null) throw new RaeJobException("A training job needs a spec; none was given.");
        var problems = new List<string>();
        var workloads = knownWorkloads.ToList();
        if (!workloads.Contains(spec.Workload, StringComparer.Ordinal))
            problems.Add($"Workload '{spec.Workload}' is unknown (known: {string.Join(", ", workloads)})");
        if (spec.Ranks < 1)
            problems.Add($"Ranks must be at least 1, got {spec.Ranks}");
        if (spec.MinRanks is { } least && (least < 1 || least > spec.Ranks))
            problems.Add($"MinRanks must be between 1 and Ranks ({spec.Ranks}), got {least}");
        else if (spec.MinRanks is { } smallest && spec.GradientAccumulation >= 1 && spec.GlobalBatchSize >= 1 && spec.GlobalBatchSize % (smallest * spec.GradientAccumulation) != 0)
            problems.Add($"GlobalBatchSize {spec.GlobalBatchSize} is not a multiple of MinRanks x GradientAccumulation = {smallest * spec.GradientAccumulation}");
        if (spec.GradientAccumulation < 1)
            problems.Add($"GradientAccumulation must be at least 1, got {spec.GradientAccumulation}");
        if (spec.GlobalBatchSize < 1)
            problems.Add($"GlobalBatchSize must be at least 1, got {spec.GlobalBatchSize}");
        else if (spec.Ranks >= 1 && spec.GradientAccumulation >= 1 && spec.GlobalBatchSize % (spec.Ranks * spec.GradientAccumulation) != 0)
            problems.Add($"GlobalBatchSize {spec.GlobalBatchSize} is not a multiple of Ranks x GradientAccumulation = {spec.Ranks * spec.GradientAccumulation}");
        if (spec.Steps < 1)
            problems.Add($"Steps must be at least 1, got {spec.Steps}");
        if (!(spec.LearningRate > 0) || double.IsInfinity(spec.LearningRate))
            problems.Add($"LearningRate must be a positive number, got {spec.LearningRate}");
        if (spec.WeightDecay < 0 || double.IsNaN(spec.WeightDecay))
            problems.Add($"WeightDecay must be zero or positive, got {spec.WeightDecay}");
        if (spec.GradientClip < 0 || double.IsNaN(spec.GradientClip))
            problems.Add($"GradientClip must be zero (off) or positive, got {spec.GradientClip}");
        if (spec.WarmupSteps < 0)
            problems.Add($"WarmupSteps must be zero or positive, got {spec.WarmupSteps}");
        if (spec.CheckpointInterval < 0)
            problems.Add($"CheckpointInterval must be zero (only at the end) or positive, got {spec.CheckpointInterval}");
        if (spec.MaxAttempts < 1)
            problems.Add($"MaxAttempts must be at least 1, got {spec.MaxAttempts}");
        if (spec.CollectiveTimeout <= TimeSpan.Zero)
            problems.Add($"CollectiveTimeout must be positive, got {spec.CollectiveTimeout}");
        if (spec.Retention is null) problems.Add("Retention must be set");
        else
        {
            try
            {
                spec.Retention.Validate();
            }
            catch (RaeJobException retention)
            {
                problems.Add(retention.Message.TrimEnd('.'));
            }
        }
        if (spec.Workload == TinyMlpWorker.WorkloadName) problems.AddRange(spec.TinyMlp?.Problems() ?? ["TinyMlp must be set"]);
        if (spec.Workload == DiTRankWorker.WorkloadName) problems.AddRange(DiTProblems(spec));
        if (problems.Count > 0)
            throw new RaeJobException("Invalid training job: " + string.Join("; ", problems) + ".");
    }

    /// <summary>The registry's own check of a DiT^DH job: the configuration matches its hash and describes a trainable job.</summary>
    private static IEnumerable<string> DiTProblems(TrainingJobSpec spec)
    {
        if (spec.Config is null) return ["Workload 'dit-dh' needs a configuration (TrainingJobSpec.Config)"];
        try
        {
            DiTJobConfig.FromConfig(spec.Config.Parse());
            return [];
        }
        catch (Exception error) when (error is RaeJobException or ArgumentException)
        {
            return [error.Message.TrimEnd('.')];
        }
    }
}
