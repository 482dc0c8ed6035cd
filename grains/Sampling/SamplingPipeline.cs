using RAE.Configuration;
using TorchSharp;
using RAE.Models.IO;
using RAE.Models.Sampling;
using RAE.Models.Stage1;
using RAE.Models.Stage2;
using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Grains.Sampling;

/// <summary>One unit's output on the CPU: uint8 images [n,H,W,3] when decoded, else float32 latents [n,C,h,w].</summary>
public sealed class SamplingUnitOutput(Tensor labels, Tensor? images, Tensor? latents) : IDisposable
{
    public Tensor Labels { get; } = labels;
    public Tensor? Images { get; } = images;
    public Tensor? Latents { get; } = latents;

    public void Dispose()
    {
        Labels.Dispose();
        Images?.Dispose();
        Latents?.Dispose();
    }
}

/// <summary>
/// The sample_ddp.py step (spec §8.2) for one unit: z ~ N(0, I) from the unit's seed, the doubled batch [z; z] with null
/// labels, the configured sampler and guidance, the first half of the last state, then (when the configuration has a
/// Stage-1 decoder) <c>uint8 = trunc(255·clamp(decode(z), 0, 1))</c> in NHWC. Not thread-safe: one worker thread owns it.
/// </summary>
public sealed class SamplingPipeline : IDisposable
{
    private readonly RaeConfig _config;
    private readonly Device _device;
    private readonly DiTwDDTHead _model;
    private readonly DiTwDDTHead? _guide;
    private readonly RepresentationAutoencoder? _decoder;
    private readonly LatentStats? _stats;
    private readonly FlowTransport _transport;

    /// <summary>Loads the Stage-2 weights from a file (safetensors or torch.save; the reference's EMA-first rule unless <paramref name="options"/> say otherwise).</summary>
    public SamplingPipeline(RaeConfig config, string checkpointPath, Device device, CheckpointLoadOptions? options = null)
        : this(config, model => CheckpointLoader.LoadInto(model, checkpointPath, options), device)
    {
    }

    /// <summary>
    /// Loads the Stage-2 weights strictly from the keys of <paramref name="weights"/> under <paramref name="prefix"/> (e.g.
    /// "ema." of a training checkpoint; the prefix is stripped, other keys are ignored). The caller keeps the tensors.
    /// </summary>
    public SamplingPipeline(RaeConfig config, IReadOnlyDictionary<string, Tensor> weights, string prefix, string sourceName, Device device)
        : this(config, model =>
        {
            if (!weights.Keys.Any(key => key.StartsWith(prefix, StringComparison.Ordinal)))
                throw new ArgumentException($"{sourceName} holds no '{prefix}*' weights (it has: {string.Join(", ", weights.Keys.Take(5))}...).");
            StrictWeightLoader.Load(model, weights, sourceName, prefix);
        }, device)
    {
    }

    private SamplingPipeline(RaeConfig config, Action<DiTwDDTHead> loadWeights, Device device)
    {
        _config = config;
        _device = device;
        var stage2 = config.Stage2 ?? throw new ArgumentException($"configuration '{config.SourceName}' has no stage_2 section");
        _model = LoadModel(stage2, loadWeights, device);
        if (config.Guidance is { IsActive: true, Method: GuidanceMethod.Autoguidance, GuidanceModel: { } guide })
        {
            var guidePath = guide.Ckpt ?? throw new ArgumentException("guidance.guidance_model.ckpt is not set");
            _guide = LoadModel(guide, model => CheckpointLoader.LoadInto(model, guidePath), device);
        }
        if (config.Stage1?.Params is { PretrainedDecoderPath: { } decoderPath } stage1)
            (_decoder, _stats) = LoadDecoder(stage1, decoderPath, config.Misc.LatentSize, device);
        _transport = FlowTransport.FromConfig(config);
    }

    public bool Decodes => _decoder is not null;

    /// <summary>Samples one unit; a cancelled <paramref name="cancellationToken"/> stops it before the next model evaluation (sampler step).</summary>
    public SamplingUnitOutput Run(IReadOnlyList<int> labels, long seed, CancellationToken cancellationToken = default)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var generator = new Generator(unchecked((ulong)seed));
        var latent = _config.Misc.LatentSize;
        var n = labels.Count;
        var y = tensor(labels.Select(label => (long)label).ToArray(), dtype: ScalarType.Int64);
        var z = randn([n, latent[0], latent[1], latent[2]], generator: generator).to(_device);
        var (zz, yy) = GuidedSampling.DoubleBatch(z, y.to(_device), _model.NullClass);
        var guided = GuidedSampling.CreateModelFunction(new DiTwDDTHeadGuidedModel(_model), yy, _config.Guidance,
            _guide is null ? null : (gx, gt, gy) => _guide.forward(gx, gt, gy));
        ModelFunction model = (x, t) =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            return guided(x, t);
        };
        var sampler = _config.Sampler;
        // Both samplers return the whole trajectory [T, 2n, ...]; sample_ddp.py keeps the last state. sampler.precision
        // bf16 runs the model's matmuls and attention in bf16, each weight cast once for the whole unit; decoding stays fp32.
        using var autocast = Models.Nn.Autocast.Enter(sampler.Precision, cacheWeights: true);
        var trajectory = sampler.Mode == SamplerMode.ODE
            ? new OdeSampler(_transport, sampler.SamplingMethod, sampler.NumSteps, sampler.Atol, sampler.Rtol).Sample(zz, model)
            : new SdeSampler(_transport, sampler.SamplingMethod, sampler.DiffusionForm, sampler.DiffusionNorm, sampler.LastStep,
                sampler.LastStepSize, sampler.NumSteps).Sample(zz, model, generator);
        var samples = trajectory[-1][..n];
        if (_decoder is null)
            return new SamplingUnitOutput(y.MoveToOuterDisposeScope(), null, samples.cpu().contiguous().MoveToOuterDisposeScope());
        var pixels = _decoder.Decode(samples).clamp(0, 1).mul(255).to(ScalarType.Byte);
        var images = pixels.permute(0, 2, 3, 1).contiguous().cpu();
        return new SamplingUnitOutput(y.MoveToOuterDisposeScope(), images.MoveToOuterDisposeScope(), null);
    }

    private static DiTwDDTHead LoadModel(Stage2Config config, Action<DiTwDDTHead> loadWeights, Device device)
    {
        if (config.Params is not DiTwDDTHeadParams p)
            throw new ArgumentException($"stage_2.target '{config.Target}' is not DiT^DH; only {Stage2Config.DiTwDDTHeadTarget} is sampled");
        var options = DiTwDDTHeadOptions.FromConfig(p);
        var model = new DiTwDDTHead(options);
        try
        {
            loadWeights(model);
            model.to(device);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static (RepresentationAutoencoder, LatentStats?) LoadDecoder(RaeParams stage1, string decoderPath, IReadOnlyList<int> latent, Device device)
    {
        var configPath = stage1.DecoderConfigPath ?? throw new ArgumentException("stage_1.params.decoder_config_path is not set");
        var decoderConfig = DecoderConfig.FromFile(configPath).WithRaeOverrides(latent[0], stage1.DecoderPatchSize, latent[1] * latent[2]);
        var decoder = new GeneralDecoder(decoderConfig);
        LatentStats? stats = null;
        try
        {
            var weights = CheckpointLoader.LoadStateDict(decoderPath, new CheckpointLoadOptions { Entry = CheckpointEntry.Root });
            try
            {
                var prefix = weights.Keys.All(key => key.StartsWith("decoder.", StringComparison.Ordinal)) ? "decoder." : "";
                StrictWeightLoader.Load(decoder, weights, decoderPath, prefix);
            }
            finally
            {
                foreach (var tensor in weights.Values) tensor.Dispose();
            }
            stats = stage1.NormalizationStatPath is { } statPath ? CheckpointLoader.LoadLatentStats(statPath, [latent[0], latent[1], latent[2]]) : null;
            var normalization = stats is null ? null : new LatentNormalization(stats.Mean, stats.Var, stage1.Eps);
            var (mean, std) = ImageStatistics(stage1.EncoderCls);
            var rae = RepresentationAutoencoder.ForDecoding(decoder, mean, std, normalization,
                new RaeOptions(stage1.EncoderInputSize, stage1.DecoderPatchSize, NoiseTau: 0, stage1.ReshapeTo2d));
            rae.to(device);
            rae.eval();
            return (rae, stats);
        }
        catch
        {
            decoder.Dispose();
            stats?.Dispose();
            throw;
        }
    }

    /// <summary>The encoder's pixel normalisation, which decoding undoes: SigLIP uses 0.5/0.5, the others ImageNet's.</summary>
    private static (float[] Mean, float[] Std) ImageStatistics(string encoderClass) => encoderClass == RaeParams.SigLip2
        ? ([0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f])
        : (Models.Stage1.Encoders.HfEncoderSupport.ImageNetMean, Models.Stage1.Encoders.HfEncoderSupport.ImageNetStd);

    public void Dispose()
    {
        _model.Dispose();
        _guide?.Dispose();
        _decoder?.Normalization?.Dispose();
        _decoder?.Dispose();
        _stats?.Dispose();
    }
}
