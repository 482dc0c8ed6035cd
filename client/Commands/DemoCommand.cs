using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;
using RAE.Configuration;
using RAE.Grains.Storage;
using RAE.Silo;

namespace RAE.Client.Commands;

/// <summary>
/// `rae demo`: the main job. Starts an in-process silo on the embedded defaults (localhost clustering, file storage under
/// --data), trains the tiny Stage 2 DiT^DH of configs/demo/stage2-demo.yaml, samples from its last checkpoint, decodes the
/// samples with the config's Stage 1 decoder (<see cref="DemoDecoder"/>: seeded weights unless the config names its own)
/// and prints where the checkpoints, the metrics, the PNGs and the `.npz` are.
/// </summary>
public sealed class DemoCommand : ICliCommand
{
    public const string DefaultConfig = "configs/demo/stage2-demo.yaml";

    private readonly Option<string> _config = new("--config") { HelpName = "FILE", Description = $"The demo's configuration [default: {DefaultConfig} above the working directory]" };
    private readonly Option<string[]> _overrides = CliOptions.Repeatable("--set", "KEY=VALUE", "Override a config value (repeatable)");
    private readonly Option<string> _data = new("--data") { HelpName = "DIR", Description = "Data folder of the in-process silo", DefaultValueFactory = _ => Path.Combine(".data", "demo") };
    private readonly Option<int> _samples = new("--num-samples") { HelpName = "N", Description = "Samples to draw and decode", DefaultValueFactory = _ => 20 };
    private readonly Option<string> _workload = new("--workload") { HelpName = "NAME", Description = "Rank worker to train with", DefaultValueFactory = _ => JobSpecFactory.DefaultWorkload };
    private readonly Option<bool> _json = CliOptions.Json();

    public DemoCommand() =>
        Command = new Command("demo", "Train, sample and decode (PNGs + FID .npz) end to end on an in-process silo")
        {
            _config, _overrides, _data, _samples, _workload, _json,
        };

    public string Name => "demo";

    public Command Command { get; }

    public async Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var samples = parsed.GetValue(_samples);
        var configPath = parsed.GetValue(_config) ?? FindDefaultConfig();
        var overrides = parsed.GetRequiredValue(_overrides);
        var dataFolder = Path.GetFullPath(parsed.GetRequiredValue(_data));
        var workload = parsed.GetRequiredValue(_workload);
        var json = parsed.GetValue(_json);
        if (samples < 1) throw new UsageException($"--num-samples must be at least 1, got {samples}");

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
        var context = new CommandContext(output, error, json, !json && ClusterCommand.IsTerminal(output), cancellationToken);
        var log = json ? TextWriter.Null : output;

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
        var roots = DataRootsOf(config, dataFolder);
        for (var i = 0; i < roots.Count; i++) settings[$"Rae:Silo:DataRoots:{i}"] = roots[i];
        var app = RaeSiloHost.Build([], settings);
        log.WriteLine($"silo: embedded, data {dataFolder}, gateway 127.0.0.1:{gatewayPort}, dashboard http://127.0.0.1:{webPort}/dashboard/, job pages http://127.0.0.1:{webPort}/jobs");
        WriteDecoderLine(log, decoder);
        await app.StartAsync(cancellationToken);
        try
        {
            var client = new RaeClient(app.Services.GetRequiredService<IGrainFactory>());
            return await RunJobsAsync(client, app.Services.GetRequiredService<IBlobStore>(), config, decoder, workload, samples, dataFolder, context, log);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            error.WriteLine("rae demo: interrupted; the in-process silo stops with its jobs (they resume on the next start with this --data folder)");
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

    /// <summary>configs/demo/stage2-demo.yaml from the working directory or any folder above it or above the program.</summary>
    private static string FindDefaultConfig()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var folder = new DirectoryInfo(start); folder is not null; folder = folder.Parent)
            {
                var candidate = Path.Combine(folder.FullName, DefaultConfig);
                if (File.Exists(candidate)) return candidate;
            }
        }
        throw new UsageException($"cannot find {DefaultConfig} above the working directory; pass --config FILE");
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
