using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Models.Data;

namespace RAE.Grains.EncodeJobs;

/// <summary>
/// What an encode job's spec means, parsed once per activation: the encoder section (<c>stage_1.params</c>), the crop size,
/// the shard encoder's options and where every file of the latent dataset goes. <see cref="RaeJobException"/> names the
/// problem of a spec that cannot be encoded.
/// </summary>
public sealed class EncodePlan
{
    private EncodePlan(EncodeJobSpec spec, RaeParams encoder)
    {
        Spec = spec;
        Encoder = encoder;
        Options = new ShardEncoderOptions(encoder.EncoderInputSize, spec.BatchSize, spec.Flip, spec.Precision == ComputePrecision.BFloat16);
    }

    public EncodeJobSpec Spec { get; }

    /// <summary>The <c>stage_1.params</c> of the configuration: encoder class, input size, encoder parameters.</summary>
    public RaeParams Encoder { get; }

    public ShardEncoderOptions Options { get; }

    public string ConfigSha256 => Spec.Config!.Sha256;

    public static EncodePlan Create(string jobId, EncodeJobSpec spec)
    {
        if (spec is null) throw new RaeJobException($"Encode job '{jobId}' needs a spec; none was given.");
        if (DatasetNames.Problem(spec.Dataset) is { } datasetProblem) throw new RaeJobException($"Encode job '{jobId}': {datasetProblem}");
        if (DatasetNames.Problem(spec.LatentName) is { } latentProblem)
            throw new RaeJobException($"Encode job '{jobId}': the latent dataset's {latentProblem}");
        if (spec.BatchSize < 1) throw new RaeJobException($"Encode job '{jobId}': the batch size must be at least 1, got {spec.BatchSize}.");
        if (spec.MaxWorkers < 0) throw new RaeJobException($"Encode job '{jobId}': MaxWorkers must be 0 (every device) or positive, got {spec.MaxWorkers}.");
        if (spec.Config is null)
            throw new RaeJobException($"Encode job '{jobId}' needs a configuration whose stage_1 section names the encoder.");
        var config = spec.Config.Parse();
        var stage1 = config.Stage1?.Params
            ?? throw new RaeJobException($"Encode job '{jobId}': the configuration '{config.SourceName}' has no stage_1 section, so it names no encoder.");
        if (!stage1.ReshapeTo2d)
            throw new RaeJobException($"Encode job '{jobId}': stage_1.params.reshape_to_2d is false; latent shards hold [C, H, W] grids, so it must be true.");
        return new EncodePlan(spec, stage1);
    }

    public string ManifestPath => LatentBlobs.ManifestPathOf(Spec.LatentName);

    public string StatPtPath => LatentBlobs.StatPtPathOf(Spec.LatentName);

    public string StatSafetensorsPath => LatentBlobs.StatSafetensorsPathOf(Spec.LatentName);

    public string ImageShardPath(string imageShard) => DatasetBlobs.ShardPathOf(Spec.Dataset, imageShard);

    public string LatentShardFile(string imageShard) => LatentBlobs.LatentShardNameFor(Spec.Dataset, imageShard);

    public string LatentShardPath(string imageShard) => LatentBlobs.ShardPathOf(Spec.LatentName, LatentShardFile(imageShard));

    /// <summary><c>latents/NAME/moments/shard-NNNNN.bin</c>: the float64 moments of one latent shard.</summary>
    public string MomentsPath(string imageShard) =>
        $"{LatentBlobs.PrefixOf(Spec.LatentName)}moments/{Path.ChangeExtension(LatentShardFile(imageShard), ".bin")}";

    public string StatisticsMethodName => Spec.Statistics == LatentStatisticsMethod.Momentum ? "momentum" : "exact";
}
