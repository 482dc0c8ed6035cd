using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage2;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>A DiT^DH job small enough for a 2-core machine, and an in-process driver that plays the coordinator.</summary>
internal static class DiTTestJobs
{
    /// <summary>DiT^DH with a 1-block 32-wide encoder and a 1-block 48-wide head on [4, 4, 4] latents, 10 classes.</summary>
    public const string TinyConfig = """
        data:
          source: synthetic-latents
          num_samples: 64
          seed: 3
        stage_2:
          target: stage2.models.DDT.DiTwDDTHead
          params:
            input_size: 4
            patch_size: 1
            in_channels: 4
            hidden_size: [32, 48]
            depth: [1, 1]
            num_heads: [4, 4]
            mlp_ratio: 2.0
            class_dropout_prob: 0.25
            num_classes: 10
            use_qknorm: false
            use_swiglu: true
            use_rope: true
            use_rmsnorm: true
            wo_shift: false
            use_pos_embed: true
        transport:
          params:
            path_type: 'Linear'
            prediction: 'velocity'
            loss_weight: null
            time_dist_type: 'logit-normal_0_1'
        misc:
          latent_size: [4, 4, 4]
          num_classes: 10
          time_dist_shift_dim: 16384
          time_dist_shift_base: 4096
        training:
          epochs: 100
          max_steps: 6
          global_batch_size: 8
          grad_accum_steps: 1
          ema_decay: 0.9
          clip_grad: 1.0
          global_seed: 7
          optimizer:
            lr: 5.0e-3
            betas: [0.9, 0.95]
            weight_decay: 0.01
          scheduler:
            type: cosine
            warmup_steps: 2
            decay_end_steps: 40
            base_lr: 5.0e-3
            final_lr: 1.0e-3
            warmup_from_zero: true
        """;

    public static TrainingJobSpec Spec(int ranks, int globalBatch = 8, int accumulation = 1, int steps = 6, params string[] overrides) =>
        TrainingJobSpecs.FromConfig(RaeConfig.Parse(TinyConfig, "tiny DiT^DH test config", overrides), ranks) with
        {
            GlobalBatchSize = globalBatch,
            GradientAccumulation = accumulation,
            Steps = steps,
            CheckpointInterval = 0,
        };

    /// <summary>Runs <paramref name="steps"/> steps over fresh workers (one per rank) with a rank-ordered mean all-reduce.</summary>
    public static TrainingRun Train(TrainingJobSpec spec, int steps)
    {
        var workers = CreateWorkers(spec);
        try
        {
            var losses = Advance(workers, 1, steps);
            return new TrainingRun(workers[0].GetParameters(), losses, workers[0].GetState());
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }
    }

    public static DiTRankWorker[] CreateWorkers(TrainingJobSpec spec)
    {
        var workers = new DiTRankWorker[spec.Ranks];
        for (var rank = 0; rank < spec.Ranks; rank++)
        {
            workers[rank] = new DiTRankWorker();
            workers[rank].Initialize(new RankWorkerContext(spec, rank, spec.Ranks, "cpu", 1));
        }
        return workers;
    }

    /// <summary>Steps [first, last] on every worker; returns the global-batch loss of each step (rank losses averaged in rank order).</summary>
    public static List<double> Advance(IReadOnlyList<DiTRankWorker> workers, long first, long last)
    {
        var losses = new List<double>();
        for (var step = first; step <= last; step++)
        {
            var results = workers.Select(worker => worker.ComputeGradients(step)).ToList();
            var averaged = MeanInRankOrder(results.Select(r => r.Gradients).ToList());
            foreach (var worker in workers) worker.ApplyUpdate(step, averaged);
            losses.Add(results.Sum(r => r.Loss) / results.Count);
        }
        return losses;
    }

    /// <summary>What CollectiveGroupGrain does for ReduceOperation.Mean: add in rank order, then divide by the rank count.</summary>
    private static float[] MeanInRankOrder(IReadOnlyList<float[]> contributions)
    {
        var result = (float[])contributions[0].Clone();
        for (var rank = 1; rank < contributions.Count; rank++)
            for (var i = 0; i < result.Length; i++) result[i] += contributions[rank][i];
        if (contributions.Count > 1)
        {
            float count = contributions.Count;
            for (var i = 0; i < result.Length; i++) result[i] /= count;
        }
        return result;
    }

    public static float RelativeDifference(float[] reference, float[] other)
    {
        Assert.Equal(reference.Length, other.Length);
        var scale = reference.Max(MathF.Abs);
        return reference.Zip(other, (a, b) => MathF.Abs(a - b)).Max() / scale;
    }
}

internal sealed record TrainingRun(float[] Parameters, List<double> Losses, byte[] State);
