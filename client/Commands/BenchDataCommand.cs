using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RAE.Configuration;
using RAE.Models.Benchmarks;
using RAE.Models.Stage1.Encoders;
using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Client.Commands;

/// <summary>
/// `rae bench data`: on this machine, one rank's images decoded + encoded per second (the frozen ResNet18 at --resolution,
/// the encode job's code path), latent-shard read throughput at the trained model's latent shape (checksum, parse,
/// shuffled batches), and the samples per second a DiT^DH training step consumes (a timed step of the `bench model` code
/// path), with the ratios.
/// </summary>
public sealed class BenchDataCommand : ICliCommand
{
    private readonly Option<int> _resolution = new("--resolution") { HelpName = "PX", Description = "ResNet18 input size (a multiple of 32)", DefaultValueFactory = _ => 64 };
    private readonly Option<int> _images = new("--images") { HelpName = "N", Description = "Synthetic 28x28 images to decode and encode", DefaultValueFactory = _ => 256 };
    private readonly Option<int> _readSamples = new("--read-samples") { HelpName = "N", Description = "Latents written as shards and read back", DefaultValueFactory = _ => 512 };
    private readonly Option<int> _shardSize = new("--shard-size") { HelpName = "N", Description = "Latents per shard", DefaultValueFactory = _ => 128 };
    private readonly Option<string> _model = CliOptions.Choice("--model", "DiT^DH whose training step is timed and whose latent shape is read: s (768x16x16) or a tiny one for tests", "s", "s", "tiny");
    private readonly Option<int> _batch = new("--batch") { HelpName = "N", Description = "Training batch (per rank)", DefaultValueFactory = _ => 8 };
    private readonly Option<int> _steps = new("--steps") { HelpName = "N", Description = "Timed training steps (after one warm-up step)", DefaultValueFactory = _ => 1 };
    private readonly Option<bool> _json = CliOptions.Json();

    public BenchDataCommand() =>
        Command = new Command("data", "Benchmark image encoding and latent-shard reading against what a DiT^DH training step consumes")
        {
            _resolution, _images, _readSamples, _shardSize, _model, _batch, _steps, _json,
        };

    public string Name => "bench data";

    public Command Command { get; }

    public Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var resolution = parsed.GetValue(_resolution);
        var images = parsed.GetValue(_images);
        var readSamples = parsed.GetValue(_readSamples);
        var shardSize = parsed.GetValue(_shardSize);
        var batch = parsed.GetValue(_batch);
        var steps = parsed.GetValue(_steps);
        var json = parsed.GetValue(_json);
        if (resolution < 32 || resolution % 32 != 0) throw new UsageException($"--resolution must be a positive multiple of 32 (ResNet18's stride), got {resolution}");
        if (images < 1 || readSamples < 1 || shardSize < 1 || batch < 1 || steps < 1)
            throw new UsageException("--images, --read-samples, --shard-size, --batch and --steps must be at least 1");
        if (readSamples < batch) throw new UsageException($"--read-samples ({readSamples}) must hold at least one training batch ({batch})");
        var model = parsed.GetRequiredValue(_model) == "tiny"
            ? new DiTwDDTHeadOptions { InputSize = 4, InChannels = 8, HiddenSize = new(64, 96), Depth = new(2, 1), NumHeads = new(4, 4), NumClasses = 10 }
            : DiTwDDTHeadOptions.S;
        Action<string>? progress = json ? null : line => output.WriteLine(line);

        var encoder = FrozenEncoders.FromConfig(new RaeParams { EncoderCls = RaeParams.ResNet18, EncoderInputSize = resolution });
        DataBenchmarkReport data;
        try
        {
            data = DataPipelineBenchmark.Run(new DataBenchmarkSettings(encoder, resolution, images, EncodeBatch: 32,
                [model.InChannels, model.InputSize, model.InputSize], readSamples, shardSize, batch), progress);
        }
        finally
        {
            (encoder as IDisposable)?.Dispose();
        }
        var training = Stage2ModelBenchmark.Run(new ModelBenchmarkSettings(model, [batch], steps, WarmupSteps: 1, ComputePrecision.Float32, CPU, MatmulSize: 1024), progress);
        var trainingSamplesPerSecond = training.Batches[0].TrainSamplesPerSecond;
        var report = new
        {
            data.Threads,
            data.ImageSize,
            data.ImagesEncoded,
            encodedLatentShape = data.EncodedLatentShape,
            imagesPerSecondPerRank = data.ImagesPerSecondPerRank,
            readLatentShape = data.ReadLatentShape,
            latentReadSamplesPerSecond = data.LatentReadSamplesPerSecond,
            trainingBatch = batch,
            trainingSecondsPerStep = batch / trainingSamplesPerSecond,
            trainingSamplesPerSecond,
            readToTrainingRatio = data.LatentReadSamplesPerSecond / trainingSamplesPerSecond,
            encodeToTrainingRatio = data.ImagesPerSecondPerRank / trainingSamplesPerSecond,
        };
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
            return Task.FromResult(0);
        }
        var invariant = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(invariant, $"encode      {report.imagesPerSecondPerRank,10:F1} images/s per rank (decode, ADM crop to {resolution} px, ResNet18 -> [{string.Join(", ", data.EncodedLatentShape)}], {data.Threads} threads)"));
        output.WriteLine(string.Create(invariant, $"read        {report.latentReadSamplesPerSecond,10:F1} samples/s (latent shards [{string.Join(", ", data.ReadLatentShape)}] checked, parsed, shuffled batches of {batch})"));
        output.WriteLine(string.Create(invariant, $"training    {trainingSamplesPerSecond,10:F2} samples/s consumed ({report.trainingSecondsPerStep:F2} s per step at batch {batch})"));
        output.WriteLine(string.Create(invariant, $"ratio       read {report.readToTrainingRatio:F0}x, encode {report.encodeToTrainingRatio:F1}x what a training step consumes"));
        return Task.FromResult(0);
    }
}
