using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using RAE.Client.Cluster;
using RAE.Client.Demo;
using RAE.GrainInterfaces;
using RAE.Configuration;
using RAE.Grains.Storage;
using RAE.Silo;

namespace RAE.Client.Commands;

/// <summary>
/// `rae demo`: the main job, on an in-process silo with the embedded defaults (localhost clustering, file storage under
/// --data). With Fashion-MNIST's IDX files present it runs every stage on them (<see cref="FashionMnistDemo"/>). Otherwise
/// (or with --synthetic) it trains the tiny Stage 2 DiT^DH of configs/demo/stage2-demo.yaml on synthetic latents, samples
/// from its last checkpoint, decodes the samples with the config's Stage 1 decoder (<see cref="DemoDecoder"/>: seeded
/// weights unless the config names its own) and prints where the checkpoints, the metrics, the PNGs and the `.npz` are.
/// </summary>
public sealed class DemoCommand : ICliCommand
{
    public const string DefaultConfig = "configs/demo/stage2-demo.yaml";
    public const string Stage1Config = "configs/demo/stage1-fashion-mnist.yaml";
    public const string Stage2Config = "configs/demo/stage2-fashion-mnist.yaml";

    private readonly Option<string> _config = new("--config") { HelpName = "FILE", Description = $"The demo's configuration [default: {DefaultConfig} above the working directory]" };
    private readonly Option<string[]> _overrides = CliOptions.Repeatable("--set", "KEY=VALUE", "Override a config value (repeatable)");
    private readonly Option<string> _data = new("--data") { HelpName = "DIR", Description = "Data folder of the in-process silo", DefaultValueFactory = _ => Path.Combine(".data", "demo") };
    private readonly Option<int> _samples = new("--num-samples") { HelpName = "N", Description = "Samples to draw and decode", DefaultValueFactory = _ => 20 };
    private readonly Option<string> _workload = new("--workload") { HelpName = "NAME", Description = "Rank worker to train with", DefaultValueFactory = _ => JobSpecFactory.DefaultWorkload };
    private readonly Option<bool> _json = CliOptions.Json();

    private readonly Option<string?> _fashionMnist = new("--fashion-mnist") { HelpName = "DIR", Description = $"Folder of the Fashion-MNIST IDX files [default: {FashionMnistFiles.DebianFolder} when present, else the synthetic demo]" };
    private readonly Option<bool> _synthetic = new("--synthetic") { Description = "Run the synthetic-latent demo (random decoder) even when Fashion-MNIST is present" };
    private readonly Option<int> _trainPerClass = new("--train-per-class") { HelpName = "N", Description = "Fashion-MNIST: train images per class (a class-balanced subset)", DefaultValueFactory = _ => 300 };
    private readonly Option<int> _testPerClass = new("--test-per-class") { HelpName = "N", Description = "Fashion-MNIST: test images per class, the fd_resnet18 reference", DefaultValueFactory = _ => 100 };
    private readonly Option<int> _samplesPerClass = new("--samples-per-class") { HelpName = "N", Description = "Fashion-MNIST: samples drawn per class", DefaultValueFactory = _ => 10 };
    private readonly Option<string> _stage1Config = new("--stage1-config") { HelpName = "FILE", Description = $"Fashion-MNIST: Stage 1 configuration [default: {Stage1Config}]" };
    private readonly Option<string> _stage2Config = new("--stage2-config") { HelpName = "FILE", Description = $"Fashion-MNIST: Stage 2 configuration [default: {Stage2Config}]" };
    private readonly Option<string[]> _stage1Overrides = CliOptions.Repeatable("--set-stage1", "KEY=VALUE", "Fashion-MNIST: override a Stage 1 config value (repeatable)");
    private readonly Option<string[]> _stage2Overrides = CliOptions.Repeatable("--set-stage2", "KEY=VALUE", "Fashion-MNIST: override a Stage 2 config value (repeatable)");

    public DemoCommand() =>
        Command = new Command("demo", "End to end on an in-process silo: Fashion-MNIST when present (datasets, encode, Stage 1, Stage 2, sampling, fd_resnet18), else synthetic latents")
        {
            _config, _overrides, _data, _samples, _workload, _json, _fashionMnist, _synthetic, _trainPerClass, _testPerClass, _samplesPerClass,
            _stage1Config, _stage2Config, _stage1Overrides, _stage2Overrides,
        };

    public string Name => "demo";

    public Command Command { get; }

    public async Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var dataFolder = Path.GetFullPath(parsed.GetRequiredValue(_data));
        var json = parsed.GetValue(_json);
        var context = new CommandContext(output, error, json, !json && ClusterCommand.IsTerminal(output), cancellationToken);
        var log = json ? TextWriter.Null : output;
        var samples = parsed.GetValue(_samples);
        if (samples < 1) throw new UsageException($"--num-samples must be at least 1, got {samples}");
        var idxFolder = parsed.GetValue(_fashionMnist);
        if (idxFolder is not null && FashionMnistFiles.Missing(idxFolder) is { Count: > 0 } missing)
            throw new UsageException(FashionMnistFiles.MissingMessage(Path.GetFullPath(idxFolder), missing));
        idxFolder ??= FashionMnistFiles.DebianFolder;
        if (!parsed.GetValue(_synthetic) && FashionMnistFiles.IsPresent(idxFolder))
        {
            FashionMnistDemoSettings settings;
            try
            {
                settings = PrepareFashionMnist(parsed, Path.GetFullPath(idxFolder), dataFolder);
            }
            catch (Exception problem) when (problem is ConfigException or IOException)
            {
                error.WriteLine($"rae demo: {problem.Message}");
                return ClusterCommand.Usage;
            }
            return await WithSiloAsync(dataFolder, FashionMnistRoots(settings, dataFolder), context, log,
                (client, blobs) => FashionMnistDemoOutput.RunAsync(new FashionMnistDemo(client, blobs, settings, QuietJobs(context, log), log), context, log));
        }

        var configPath = parsed.GetValue(_config) ?? FindRepositoryFile(DefaultConfig);
        var overrides = parsed.GetRequiredValue(_overrides);
        var workload = parsed.GetRequiredValue(_workload);

        RaeConfig config;
        DemoDecoderInfo? decoder;
        try
        {
            (config, decoder) = DemoDecoder.Prepare(JobSpecFactory.LoadConfig(configPath, overrides), configPath, dataFolder);
        }
        catch (Exception problem) when (problem is ConfigException or IOException or UnauthorizedAccessException)
        {
            // A bad config, a missing decoder file, or a data folder the seeded decoder cannot be written to.
            error.WriteLine($"rae demo: {problem.Message}");
            return ClusterCommand.Usage;
        }
        if (!parsed.GetValue(_synthetic))
            log.WriteLine($"note: Fashion-MNIST is not in {idxFolder}, so this is the synthetic demo (random latents, untrained decoder); on Debian, apt-get install {FashionMnistFiles.DebianPackage} gives the real one");
        WriteDecoderLine(log, decoder);
        return await WithSiloAsync(dataFolder, DataRootsOf(config, dataFolder), context, log,
            (client, blobs) => RunJobsAsync(client, blobs, config, decoder, workload, samples, dataFolder, context, log));
    }

    /// <summary>The watchers of the Fashion-MNIST stages print plain progress lines to the log, never JSON (--json prints one object at the end).</summary>
    private static CommandContext QuietJobs(CommandContext context, TextWriter log) =>
        context with { Output = log, Json = false, Live = context.Live };

    private FashionMnistDemoSettings PrepareFashionMnist(ParseResult parsed, string idxFolder, string dataFolder)
    {
        foreach (var (option, value) in new[] { (_trainPerClass, parsed.GetValue(_trainPerClass)), (_testPerClass, parsed.GetValue(_testPerClass)), (_samplesPerClass, parsed.GetValue(_samplesPerClass)) })
            if (value < 1) throw new UsageException($"{option.Name} must be at least 1, got {value}");
        var stage1Path = parsed.GetValue(_stage1Config) ?? FindRepositoryFile(Stage1Config);
        var stage2Path = parsed.GetValue(_stage2Config) ?? FindRepositoryFile(Stage2Config);
        var runId = $"demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}";
        return new FashionMnistDemoSettings
        {
            IdxFolder = idxFolder,
            TrainPerClass = parsed.GetValue(_trainPerClass),
            TestPerClass = parsed.GetValue(_testPerClass),
            SamplesPerClass = parsed.GetValue(_samplesPerClass),
            Stage1 = WithAbsoluteDecoderConfig(JobSpecFactory.LoadConfig(stage1Path, parsed.GetRequiredValue(_stage1Overrides)), stage1Path),
            Stage2 = WithAbsoluteDecoderConfig(JobSpecFactory.LoadConfig(stage2Path, parsed.GetRequiredValue(_stage2Overrides)), stage2Path),
            OutputFolder = Path.Combine(dataFolder, "runs", runId),
            RunId = runId,
        };
    }

    private static RaeConfig WithAbsoluteDecoderConfig(RaeConfig config, string configPath)
    {
        var path = DemoDecoder.ResolveDecoderConfig(config, configPath, config.Stage1?.Params.DecoderConfigPath);
        return config.WithOverrides([$"stage_1.params.decoder_config_path={JsonSerializer.Serialize(path)}"]);
    }

    private static IReadOnlyList<string> FashionMnistRoots(FashionMnistDemoSettings settings, string dataFolder) =>
        new[] { Path.GetFullPath(dataFolder), Path.GetDirectoryName(settings.Stage1.Stage1!.Params.DecoderConfigPath!)!, Path.GetDirectoryName(settings.Stage2.Stage1!.Params.DecoderConfigPath!)! }
            .Distinct(StringComparer.Ordinal).ToList();

    /// <summary>Starts the in-process silo (localhost clustering, file storage under the data folder), runs, and stops it.</summary>
    private static async Task<int> WithSiloAsync(string dataFolder, IReadOnlyList<string> roots, CommandContext context, TextWriter log, Func<RaeClient, IBlobStore, Task<int>> run)
    {
        var (siloPort, gatewayPort, webPort) = (FreePort(), FreePort(), FreePort());
        var settings = new Dictionary<string, string?>
        {
            ["Rae:Silo:DataFolder"] = dataFolder,
            ["Rae:Silo:SiloPort"] = siloPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Rae:Silo:GatewayPort"] = gatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Rae:Silo:WebPort"] = webPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Rae:Silo:ThreadsPerRank"] = Math.Max(1, Environment.ProcessorCount).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Logging:LogLevel:Default"] = "Error",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
        };
        // The in-process silo reads the files this run's configuration names, and nothing outside them and the data folder.
        for (var i = 0; i < roots.Count; i++) settings[$"Rae:Silo:DataRoots:{i}"] = roots[i];
        var app = RaeSiloHost.Build([], settings);
        log.WriteLine($"silo: embedded, data {dataFolder}, gateway 127.0.0.1:{gatewayPort}, dashboard http://127.0.0.1:{webPort}/dashboard/, job pages http://127.0.0.1:{webPort}/jobs");
        await app.StartAsync(context.CancellationToken);
        try
        {
            return await run(new RaeClient(app.Services.GetRequiredService<IGrainFactory>()), app.Services.GetRequiredService<IBlobStore>());
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            context.Error.WriteLine("rae demo: interrupted; the in-process silo stops with its jobs (they resume on the next start with this --data folder)");
            return ClusterCommand.Interrupted;
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await app.StopAsync(stop.Token);
            await app.DisposeAsync();
        }
    }

    private static async Task<int> RunJobsAsync(RaeClient client, IBlobStore blobs, RaeConfig config, DemoDecoderInfo? decoder, string workload, int samples, string dataFolder, CommandContext context, TextWriter log)
    {
        var spec = JobSpecFactory.Training(config, workload, ranks: 1);
        string jobId;
        try
        {
            jobId = await client.SubmitTrainingAsync(spec);
        }
        catch (RaeJobException problem) when (problem.Message.Contains($"Workload '{workload}' is unknown", StringComparison.Ordinal))
        {
            context.Error.WriteLine($"rae demo: the silo has no rank worker for workload '{workload}', which the demo trains. {problem.Message}");
            return ClusterCommand.Failed;
        }
        log.WriteLine($"training {jobId}: {config.SourceName}, {spec.Steps} steps, global batch {spec.GlobalBatchSize}, checkpoint every {spec.CheckpointInterval} steps");

        var metricsPath = Path.Combine(dataFolder, "metrics", jobId + ".jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(metricsPath)!);
        await using (var metrics = new StreamWriter(metricsPath))
        {
            var watcher = new JobWatcher(client, context)
            {
                OnMetrics = step => metrics.WriteLine(JsonSerializer.Serialize(step, CommandContext.JsonOptions)),
                OnEvaluation = evaluation => metrics.WriteLine(JsonSerializer.Serialize(new { kind = "eval", evaluation }, CommandContext.JsonOptions)),
            };
            var state = await watcher.WatchTrainingAsync(jobId);
            if (state != JobState.Completed) return ClusterCommand.Failed;
        }
        var checkpoints = await client.ListCheckpointsAsync(jobId);
        var latest = checkpoints.Count > 0 ? checkpoints[^1] : null;
        if (latest is null)
        {
            context.Error.WriteLine($"rae demo: training {jobId} completed without a committed checkpoint; nothing to sample from.");
            return ClusterCommand.Failed;
        }

        var samplingSpec = JobSpecFactory.Sampling(config, JobSpecFactory.DefaultSamplingWorkload, new SamplingSource(jobId, latest.Step, null),
            samples, seed: 0, labels: "equal", unitSize: 5);
        string samplingId;
        try
        {
            samplingId = await client.StartSamplingAsync(samplingSpec);
        }
        catch (RaeJobException problem)
        {
            context.Error.WriteLine($"rae demo: training {jobId} completed, but the sampling job did not start: {problem.Message}");
            return ClusterCommand.Failed;
        }
        log.WriteLine($"sampling {samplingId}: {samples} samples from {jobId}@{latest.Step.ToString(System.Globalization.CultureInfo.InvariantCulture)}, labels equal, seed 0");
        var samplingState = await new JobWatcher(client, context).WatchSamplingAsync(samplingId);
        var sampling = await client.GetSamplingStatusAsync(samplingId);

        // The embedded silo's blob store keeps checkpoints under <data>/blobs, at the catalog's blob path.
        var checkpointFolder = Path.Combine(dataFolder, "blobs", Path.GetDirectoryName(latest.Location) ?? "");
        var exported = samplingState == JobState.Completed
            ? await DemoSampleExport.ExportAsync(blobs, sampling, Path.Combine(dataFolder, "samples", samplingId), context.CancellationToken)
            : new DemoSamples(null, null, null, 0);
        var latents = exported.NpzPath is null && sampling.OutputLocation is { } units ? $"{units} in the blob store {blobs.Location}" : null;
        if (context.Json)
        {
            context.WriteJson(new
            {
                trainingJob = jobId, samplingJob = samplingId, samplingState, checkpoints = checkpointFolder, latestCheckpoint = Path.Combine(dataFolder, "blobs", latest.Location), metrics = metricsPath,
                npz = exported.NpzPath, npzArray = exported.NpzShape, pngs = exported.PngFolder, pngCount = exported.PngCount,
                decoder = decoder?.WeightsPath, decoderGenerated = decoder?.Generated, latents,
            });
        }
        else
        {
            log.WriteLine();
            log.WriteLine($"checkpoints: {checkpointFolder} ({checkpoints.Count} committed, latest step {latest.Step.ToString(System.Globalization.CultureInfo.InvariantCulture)})");
            log.WriteLine($"metrics:     {metricsPath}");
            if (exported.PngFolder is not null) log.WriteLine($"pngs:        {exported.PngFolder} ({exported.PngCount} images)");
            if (exported.NpzPath is not null) log.WriteLine($"npz:         {exported.NpzPath} (arr_0 {exported.NpzShape}, the FID reference format)");
            if (latents is not null) log.WriteLine($"samples:     {latents} (latents: the config has no Stage 1 decoder, so no PNGs or image .npz were written)");
            if (decoder is { Generated: true } && exported.PngCount > 0)
                log.WriteLine("note:        the images are noise-like: this demo trains DiT^DH on synthetic latents and decodes with a seeded random decoder; real images go through rae datasets add, rae encode, rae train (Stage 1 with --data on an image dataset, Stage 2 on the latents) and rae eval");
        }
        return ClusterCommand.ExitCodeOf(samplingState);
    }

    private static void WriteDecoderLine(TextWriter log, DemoDecoderInfo? decoder)
    {
        if (decoder is null) return;
        var size = decoder.ImageSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        log.WriteLine(decoder.Generated
            ? $"decoder: {decoder.WeightsPath} (Stage 1, {size}x{size} px, seeded random weights written by the demo: untrained, so the images will be noise-like; --set stage_1.params.pretrained_decoder_path=FILE uses trained ones)"
            : $"decoder: {decoder.WeightsPath} (Stage 1, {size}x{size} px, from stage_1.params.pretrained_decoder_path)");
    }

    /// <summary>A file of the repository (e.g. configs/demo/stage2-demo.yaml) from the working directory or any folder above it or above the program.</summary>
    private static string FindRepositoryFile(string relativePath)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var folder = new DirectoryInfo(start); folder is not null; folder = folder.Parent)
            {
                var candidate = Path.Combine(folder.FullName, relativePath);
                if (File.Exists(candidate)) return candidate;
            }
        }
        throw new UsageException($"cannot find {relativePath} above the working directory; pass its file with the matching --config option");
    }

    /// <summary>The data folder and the folders of the Stage 1 files the (prepared, absolute-path) configuration names.</summary>
    internal static IReadOnlyList<string> DataRootsOf(RaeConfig config, string dataFolder)
    {
        var roots = new List<string> { Path.GetFullPath(dataFolder) };
        if (config.Stage1?.Params is { } stage1)
        {
            if (stage1.DecoderConfigPath is { } architecture)
                roots.Add(Directory.Exists(architecture) ? Path.GetFullPath(architecture) : Path.GetDirectoryName(Path.GetFullPath(architecture))!);
            foreach (var file in new[] { stage1.PretrainedDecoderPath, stage1.NormalizationStatPath })
                if (file is not null) roots.Add(Path.GetDirectoryName(Path.GetFullPath(file))!);
        }
        return roots.Distinct(StringComparer.Ordinal).ToList();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
