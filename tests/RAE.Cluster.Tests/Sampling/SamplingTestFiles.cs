using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Sampling;
using RAE.Grains.Storage;
using RAE.Models.IO;
using RAE.Models.Stage1;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Sampling;

/// <summary>
/// Files for tiny sampling jobs: the ddt_tiny DiT^DH fixture weights (latent [8,4,4], 10 classes) and a matching tiny
/// decoder (decoder_tiny's architecture with an 8-channel input and patch 2, so 8×8 images) with seeded random weights and
/// latent statistics, written once into a temporary folder.
/// </summary>
public sealed class SamplingTestFiles
{
    private static readonly Lazy<SamplingTestFiles> Shared = new(() => new SamplingTestFiles());

    public static SamplingTestFiles Instance => Shared.Value;

    public string Folder { get; } = Path.Combine(Path.GetTempPath(), "rae-sampling-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public string CheckpointPath { get; }
    /// <summary>A folder holding the decoder's config.json, as decoder_config_path names it in the reference configs.</summary>
    public string DecoderConfigPath { get; }
    public string DecoderWeightsPath { get; }
    public string StatsPath { get; }

    private SamplingTestFiles()
    {
        Directory.CreateDirectory(Folder);
        CheckpointPath = Path.Combine(FindFixtures(), "ddt_tiny", "weights.safetensors");
        DecoderConfigPath = Path.Combine(Folder, "decoder");
        Directory.CreateDirectory(DecoderConfigPath);
        File.WriteAllText(Path.Combine(DecoderConfigPath, "config.json"), """
            {"hidden_size": 8, "decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 4,
             "decoder_intermediate_size": 64, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "qkv_bias": true,
             "num_channels": 3, "patch_size": 2, "image_size": 8}
            """);
        DecoderWeightsPath = Path.Combine(Folder, "decoder.safetensors");
        using (var generator = new Generator(11))
        using (var decoder = new GeneralDecoder(DecoderConfig.FromFile(DecoderConfigPath).WithRaeOverrides(8, 2, 16), generator: generator))
        using (var scope = NewDisposeScope())
        {
            // A constructor-initialised head may be near zero; random weights make the images depend on the latents.
            foreach (var (_, parameter) in decoder.named_parameters())
                using (no_grad()) parameter.copy_(randn(parameter.shape, generator: generator) * 0.3);
            SafeTensors.Save(DecoderWeightsPath, decoder.state_dict());
        }
        StatsPath = Path.Combine(Folder, "stats.safetensors");
        using (var generator = new Generator(12))
        using (var scope = NewDisposeScope())
            SafeTensors.Save(StatsPath, [new("mean", randn([8, 4, 4], generator: generator) * 0.1), new("var", rand([8, 4, 4], generator: generator) + 0.5)]);
    }

    /// <summary>An RAE configuration for ddt_tiny: Euler ODE with few steps, CFG 1.5 in [0, 0.8]; with a decoder unless <paramref name="decode"/> is false.</summary>
    public string ConfigYaml(bool decode = true, int steps = 4, bool autoguidance = false)
    {
        var guidance = autoguidance ? $"""
            guidance:
              method: autoguidance
              scale: 1.5
              t_min: 0.0
              t_max: 0.8
              guidance_model:
                target: stage2.models.DDT.DiTwDDTHead
                ckpt: {Path.Combine(Path.GetDirectoryName(CheckpointPath)!, "guidance_weights.safetensors")}
                params:
                  input_size: 4
                  patch_size: 1
                  in_channels: 8
                  hidden_size: [32, 64]
                  depth: [1, 1]
                  num_heads: [2, 4]
                  num_classes: 10
            """ : """
            guidance:
              method: cfg
              scale: 1.5
              t_min: 0.0
              t_max: 0.8
            """;
        var stage1 = decode ? $"""
            stage_1:
              target: stage1.RAE
              params:
                encoder_cls: Dinov2withNorm
                decoder_config_path: {DecoderConfigPath}
                decoder_patch_size: 2
                pretrained_decoder_path: {DecoderWeightsPath}
                normalization_stat_path: {StatsPath}
            """ : "";
        return stage1 + $"""

            stage_2:
              target: stage2.models.DDT.DiTwDDTHead
              ckpt: {CheckpointPath}
              params:
                input_size: 4
                patch_size: 1
                in_channels: 8
                hidden_size: [64, 96]
                depth: [2, 1]
                num_heads: [4, 4]
                num_classes: 10
            sampler:
              mode: ODE
              params:
                sampling_method: euler
                num_steps: {steps}
            {guidance}
            misc:
              latent_size: [8, 4, 4]
              num_classes: 10
              time_dist_shift_dim: 4096
            """;
    }

    public SamplingJobSpec Spec(int samples, int unitSize, long seed = 7, string labels = "equal", bool decode = true, bool autoguidance = false,
        int steps = 4) =>
        SamplingJobSpecs.FromConfig(RaeConfig.Parse(ConfigYaml(decode, steps, autoguidance), "sampling test config")) with
        {
            Samples = samples,
            UnitSize = unitSize,
            Classes = 10,
            Labels = labels,
            Seed = seed,
        };

    public static IBlobStore Blobs(ClusterFixture fixture) =>
        new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = Path.Combine(fixture.DataFolder, "blobs") });

    public static async Task<SamplingJobStatus> WaitForEndAsync(ClusterFixture fixture, string jobId, TimeSpan? timeout = null)
    {
        var job = fixture.Grains.GetGrain<ISamplingJobGrain>(jobId);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(120));
        while (true)
        {
            var status = await job.GetStatus();
            if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return status;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Sampling job {jobId} is still {status.State} with {status.UnitsDone}/{status.UnitsTotal} units after the test's deadline.");
            await Task.Delay(100);
        }
    }

    private static string FindFixtures() => RAE.Models.Tests.Fixtures.Root;
}

/// <summary>Counts <c>rae.sampling.unit_executions</c> per (job, unit) while it is alive.</summary>
public sealed class UnitExecutionCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Job, int Unit), long> _counts = new();

    public UnitExecutionCounter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == SamplingTelemetry.MeterName && instrument.Name == "rae.sampling.unit_executions")
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? job = null;
            int? unit = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "job") job = tag.Value as string;
                if (tag.Key == "unit" && tag.Value is int index) unit = index;
            }
            if (job is not null && unit is not null) _counts.AddOrUpdate((job, unit.Value), value, (_, previous) => previous + value);
        });
        _listener.Start();
    }

    public long Count(string job, int unit) => _counts.GetValueOrDefault((job, unit));

    public long Total(string job) => _counts.Where(pair => pair.Key.Job == job).Sum(pair => pair.Value);

    public void Dispose() => _listener.Dispose();
}
