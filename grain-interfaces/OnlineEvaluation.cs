namespace RAE.GrainInterfaces;

/// <summary>
/// Online evaluation of a training job (config <c>eval</c>), parsed once by <see cref="TrainingJobSpecs.FromConfig"/>.
/// Stage 2 (<c>dit-dh</c>): every <see cref="Interval"/> steps the coordinator commits a checkpoint and runs a sampling
/// job from its EMA weights (<see cref="Samples"/> images, seed <see cref="Seed"/>, labels "equal", as <c>rae sample</c>)
/// and an evaluation job of <see cref="Metric"/> against <see cref="ReferenceDataset"/>'s cached statistics. Stage 1
/// (<c>rae-decoder</c>): rank 0 scores the EMA decoder's reconstructions of the first <see cref="Samples"/> images of
/// <see cref="ReferenceDataset"/> on its worker thread: a held-out dataset (eval.data_path, e.g. the test split) or, without
/// one, the training dataset itself.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record OnlineEvaluationSpec
{
    /// <summary>Evaluate after every step that is a multiple of this (eval.eval_interval).</summary>
    [Id(0)] public long Interval { get; init; }
    /// <summary>Stage 2: fd_resnet18, or fid with <see cref="InceptionWeightsPath"/>. Stage 1: the first of <see cref="ReconstructionMetrics"/>.</summary>
    [Id(1)] public EvaluationMetric Metric { get; init; } = EvaluationMetric.FdResNet18;
    /// <summary>Images sampled (Stage 2) or reconstructed (Stage 1) per evaluation (eval.num_samples).</summary>
    [Id(2)] public int Samples { get; init; } = 64;
    /// <summary>The sampling seed (eval.seed, default training.global_seed).</summary>
    [Id(3)] public long Seed { get; init; }
    /// <summary>The image dataset of the cluster the samples are compared with (eval.data_path); null: the training data's source dataset.</summary>
    [Id(4)] public string? ReferenceDataset { get; init; }
    /// <summary>The <c>pt_inception-2015-12-05</c> weights a silo can read (eval.inception_path); needed by fid and rfid.</summary>
    [Id(5)] public string? InceptionWeightsPath { get; init; }
    /// <summary>Stage 1: any of psnr, ssim, rfd_resnet18 and rfid (eval.metrics), all recorded.</summary>
    [Id(6)] public IReadOnlyList<EvaluationMetric> ReconstructionMetrics { get; init; } = [EvaluationMetric.Psnr, EvaluationMetric.Ssim];
    /// <summary>Images per sampling work unit and per evaluation unit.</summary>
    [Id(7)] public int UnitSize { get; init; } = 64;
    /// <summary>A pause after each unit of the sampling and evaluation jobs (their UnitDelay; tests that stop a coordinator mid-evaluation).</summary>
    [Id(8)] public TimeSpan UnitDelay { get; init; }

    /// <summary>Whether <paramref name="step"/> is an evaluation step.</summary>
    public bool IsDue(long step) => Interval > 0 && step > 0 && step % Interval == 0;

    /// <summary>The key a Stage 1 worker reports a reconstruction metric under in its step details.</summary>
    public static string DetailKey(EvaluationMetric metric) => "eval/" + EvaluationMetrics.NameOf(metric);
}

/// <summary>One online evaluation of a training job: the metric of its EMA weights at <see cref="Step"/> (NaN with <see cref="Error"/> when it failed).</summary>
[GenerateSerializer, Immutable]
public sealed record OnlineEvaluationRecord(
    [property: Id(0)] long Step,
    [property: Id(1)] string Metric,
    [property: Id(2)] double Value,
    [property: Id(3)] int Images,
    /// <summary>The sampling and evaluation jobs that produced it (Stage 2); null for a Stage 1 worker's score.</summary>
    [property: Id(4)] string? SamplingJobId,
    [property: Id(5)] string? EvaluationJobId,
    [property: Id(6)] double Seconds,
    [property: Id(7)] DateTimeOffset CompletedAt,
    [property: Id(8)] string? Error = null);
