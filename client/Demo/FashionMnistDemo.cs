using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Sampling;
using RAE.Grains.Storage;
using RAE.Models.Data;
using RAE.Models.IO;
using RAE.Models.Stage2;
using static TorchSharp.torch;

namespace RAE.Client.Demo;

/// <summary>What the Fashion-MNIST demo runs on: the IDX folder, the subset sizes, the two configurations and the output folder.</summary>
public sealed record FashionMnistDemoSettings
{
    public required string IdxFolder { get; init; }
    public required int TrainPerClass { get; init; }
    public required int TestPerClass { get; init; }
    public required int SamplesPerClass { get; init; }
    /// <summary>The Stage 1 configuration, its decoder_config_path already absolute.</summary>
    public required RaeConfig Stage1 { get; init; }
    /// <summary>The Stage 2 configuration, its decoder_config_path already absolute.</summary>
    public required RaeConfig Stage2 { get; init; }
    public required string OutputFolder { get; init; }
    public string RunId { get; init; } = $"demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}";
}

/// <summary>
/// One stage's wall time, the CPU time of this process (the in-process silo does all the work, so on a loaded machine this,
/// not the wall time, is the stage's cost) and what it did.
/// </summary>
public sealed record DemoStage(string Name, double Seconds, double CpuSeconds, string Detail);

/// <summary>A stage of the demo failed: names the stage and why.</summary>
public sealed class DemoStageException(string stage, string message) : Exception($"stage '{stage}' failed: {message}")
{
    public string Stage { get; } = stage;
}

/// <summary>Everything the demo measured and wrote.</summary>
public sealed record FashionMnistDemoResult
{
    public required IReadOnlyList<DemoStage> Stages { get; init; }
    public double TotalSeconds => Stages.Sum(stage => stage.Seconds);
    public double TotalCpuSeconds => Stages.Sum(stage => stage.CpuSeconds);
    public required double FdTrained { get; init; }
    public required double FdUntrained { get; init; }
    /// <summary>The Stage 2 job's online evaluations (config <c>eval</c>): fd_resnet18 of its EMA weights against the test subset; empty without one.</summary>
    public required IReadOnlyList<OnlineEvaluationRecord> Stage2Evaluations { get; init; }
    public required IReadOnlyList<string> Classes { get; init; }
    public required IReadOnlyDictionary<string, string> Jobs { get; init; }
    public required IReadOnlyDictionary<string, string> Files { get; init; }
    public required string NpzShape { get; init; }
    public required int GridWidth { get; init; }
    public required int GridHeight { get; init; }
}

/// <summary>
/// `rae demo` on Fashion-MNIST, every stage a job of the (in-process) cluster: adds a class-balanced train subset and a
/// test subset as datasets, encodes the train subset with the frozen ResNet18 (latent statistics included), trains the
/// Stage 1 decoder on the images and exports its EMA weights, trains class-conditional DiT^DH on the normalised latents,
/// samples N per class with CFG from it and from an untrained DiT^DH, decodes both with the trained decoder, and scores
/// both with fd_resnet18 against the test subset.
/// </summary>
public sealed class FashionMnistDemo(RaeClient client, IBlobStore blobs, FashionMnistDemoSettings settings, CommandContext jobs, TextWriter log)
{
    private const int SamplingUnitSize = 50;
    private readonly List<DemoStage> _stages = [];
    private readonly Dictionary<string, string> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _jobs = new(StringComparer.Ordinal);

    public async Task<FashionMnistDemoResult> RunAsync()
    {
        Directory.CreateDirectory(settings.OutputFolder);
        var classes = FashionMnistFiles.ClassNames;
        var trainName = $"fashion-mnist-train-{settings.TrainPerClass}";
        var testName = $"fashion-mnist-test-{settings.TestPerClass}";
        var train = await StageAsync("datasets", async () =>
        {
            var added = await AddDatasetAsync(trainName, "train", settings.TrainPerClass);
            var test = await AddDatasetAsync(testName, "t10k", settings.TestPerClass);
            return (added, $"{trainName}: {added.ImageCount} train images, {testName}: {test.ImageCount} test images, {added.Classes.Count} classes");
        });

        var stage1Params = settings.Stage1.Stage1!.Params;
        var latentName = EncodeCommand.DefaultName(trainName, stage1Params);
        var latents = await StageAsync("encode", async () =>
        {
            var info = await EncodeAsync(trainName, latentName);
            return (info, $"{latentName}: {info.Count} latents [{string.Join(", ", info.LatentShape)}] from ResNet18 at {stage1Params.EncoderInputSize} px, exact statistics");
        });
        var statPath = Path.Combine(settings.OutputFolder, "stat.pt");
        await CopyBlobAsync(LatentBlobs.PrefixOf(latentName) + LatentBlobs.StatPtFile, statPath);
        _files["statistics"] = statPath;

        var decoderPath = Path.Combine(settings.OutputFolder, "decoder-ema.safetensors");
        await StageAsync("stage1", async () =>
        {
            var config = settings.Stage1.WithOverrides(["data.source=dataset", $"data.name={trainName}", $"data.num_samples={train.ImageCount}"]);
            var jobId = await TrainAsync("stage1", config, TrainingJobSpecs.DecoderWorkload, null);
            var checkpoint = await client.GetCheckpointAsync(jobId, null);
            var tensors = await CheckpointsExportCommand.ExportAsync(client.Grains, checkpoint, "ema", weightsExplicit: true, decoderPath, jobs.CancellationToken);
            _files["decoder"] = decoderPath;
            return (0, $"{jobId}: {checkpoint.Step} steps, EMA decoder ({tensors} tensors) exported");
        });

        var stage2 = settings.Stage2.WithOverrides([
            "data.source=latents", $"data.dataset={latentName}",
            Assignment("stage_1.params.pretrained_decoder_path", decoderPath), Assignment("stage_1.params.normalization_stat_path", statPath),
        ]);
        // Online evaluation compares with the test subset, as the final eval does (whose statistics it caches first).
        if (stage2.Eval is not null) stage2 = stage2.WithOverrides([$"eval.data_path={testName}"]);
        IReadOnlyList<OnlineEvaluationRecord> evaluations = [];
        var stage2Job = await StageAsync("stage2", async () =>
        {
            var jobId = await TrainAsync("stage2", stage2, TrainingJobSpecs.DiTWorkload, latents.Count);
            var status = await client.GetTrainingStatusAsync(jobId);
            evaluations = status.Evaluations;
            var detail = $"{jobId}: DiT^DH, {status.Step} steps of batch {status.Spec.GlobalBatchSize} on {latents.Count} latents";
            if (evaluations.Count > 0) detail += $", {evaluations.Count} online evaluations ({WriteEvaluationCurve(evaluations, jobId)})";
            return (jobId, detail);
        });

        var samples = settings.SamplesPerClass * classes.Count;
        var trainedSampling = await StageAsync("sample", async () =>
        {
            var id = await SampleAsync("samples", stage2, new SamplingSource(stage2Job, null, null), samples);
            return (id, string.Create(CultureInfo.InvariantCulture, $"{id}: {samples} samples ({settings.SamplesPerClass} per class), guidance scale {stage2.Guidance.Scale}, decoded by the trained decoder"));
        });
        var untrainedSampling = await StageAsync("sample-untrained", async () =>
        {
            var weights = WriteUntrainedDiT(stage2, Path.Combine(settings.OutputFolder, "dit-untrained.safetensors"));
            var id = await SampleAsync("untrained-samples", stage2, new SamplingSource(null, null, weights), samples);
            return (id, $"{id}: the same sampling from a seeded, untrained DiT^DH");
        });

        var (fdTrained, fdUntrained) = await StageAsync("eval", async () =>
        {
            var trained = await EvaluateAsync("eval", trainedSampling, testName);
            var untrained = await EvaluateAsync("eval-untrained", untrainedSampling, testName);
            return ((trained, untrained), string.Create(CultureInfo.InvariantCulture, $"fd_resnet18 against {testName}: trained {trained:F2}, untrained {untrained:F2}"));
        });

        var npz = _files["npz"];
        var labels = SamplingLabels.Compute("equal", samples, classes.Count, seed: 0);
        var grid = Path.Combine(settings.OutputFolder, "samples-grid.png");
        var (width, height) = DemoFigures.WriteSampleGrid(npz, labels, classes, grid);
        _files["grid"] = grid;
        var untrainedGrid = Path.Combine(settings.OutputFolder, "untrained-samples-grid.png");
        DemoFigures.WriteSampleGrid(_files["untrained-samples-npz"], labels, classes, untrainedGrid);
        _files["untrained-grid"] = untrainedGrid;

        var result = new FashionMnistDemoResult
        {
            Stages = _stages, FdTrained = fdTrained, FdUntrained = fdUntrained, Stage2Evaluations = evaluations, Classes = classes, Jobs = _jobs, Files = _files,
            NpzShape = DemoSampleExport.DescribeImages(npz), GridWidth = width, GridHeight = height,
        };
        var summary = Path.Combine(settings.OutputFolder, "summary.json");
        _files["summary"] = summary;
        await File.WriteAllTextAsync(summary, JsonSerializer.Serialize(result, CommandContext.JsonOptions));
        return result;
    }

    private async Task<T> StageAsync<T>(string name, Func<Task<(T Value, string Detail)>> run)
    {
        log.WriteLine($"== {name}");
        var clock = Stopwatch.StartNew();
        var cpuBefore = ProcessCpuTime();
        var (value, detail) = await run();
        var cpu = ProcessCpuTime() - cpuBefore;
        var stage = new DemoStage(name, Math.Round(clock.Elapsed.TotalSeconds, 1), Math.Round(cpu.TotalSeconds, 1), detail);
        _stages.Add(stage);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {name}: {stage.Seconds:F1} s ({stage.CpuSeconds:F1} CPU s)  {detail}"));
        return value;
    }

    private static TimeSpan ProcessCpuTime()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }

    /// <summary>Adds the first <paramref name="perClass"/> images per class of an IDX split; a dataset of that name already in the store is reused.</summary>
    private async Task<DatasetDescription> AddDatasetAsync(string name, string split, int perClass)
    {
        var grain = client.Grains.GetGrain<IDatasetGrain>(name);
        try
        {
            var existing = await grain.Describe();
            log.WriteLine($"   dataset {name} is already in the store ({existing.ImageCount} images): reused");
            return existing;
        }
        catch (RaeJobException)
        {
            // Not added yet.
        }
        var source = new BalancedSubsetSource(IdxImageSource.Open(settings.IdxFolder, split, FashionMnistFiles.ClassNames), perClass);
        if (await DatasetsAddCommand.AddAsync(client.Grains, name, source, new DatasetBuildOptions(), jobs) != ClusterCommand.Ok)
            throw new DemoStageException("datasets", $"dataset {name} was refused");
        return await grain.Describe();
    }

    private async Task<LatentDatasetInfo> EncodeAsync(string dataset, string latentName)
    {
        try
        {
            var existing = await client.DescribeLatentDatasetAsync(latentName);
            log.WriteLine($"   latent dataset {latentName} is already in the store: reused");
            return existing;
        }
        catch (RaeJobException)
        {
            // Not encoded yet.
        }
        var id = await client.SubmitEncodingAsync(new EncodeJobSpec
        {
            Dataset = dataset, LatentName = latentName, Config = JobConfiguration.From(settings.Stage1),
            Statistics = LatentStatisticsMethod.Exact, Precision = ComputePrecision.Float32, BatchSize = 64,
        });
        _jobs["encode"] = id;
        var state = await new JobWatcher(client, jobs).WatchEncodingAsync(id);
        if (state != JobState.Completed) throw new DemoStageException("encode", $"encode job {id} ended {state}: {(await client.GetEncodeStatusAsync(id)).FailureReason}");
        return await client.DescribeLatentDatasetAsync(latentName);
    }

    /// <summary>Trains to the end, writing the metrics JSONL and the loss curve PNG; returns the job id.</summary>
    private async Task<string> TrainAsync(string stage, RaeConfig config, string workload, long? latentCount)
    {
        var jobId = $"{settings.RunId}-{stage}";
        var spec = JobSpecFactory.Training(config, workload, ranks: 1, latentCount);
        await client.SubmitTrainingAsync(spec, jobId);
        _jobs[stage] = jobId;
        log.WriteLine($"   {jobId}: {workload}, {spec.Steps} steps, global batch {spec.GlobalBatchSize}");
        var metrics = new List<StepMetrics>();
        var metricsPath = Path.Combine(settings.OutputFolder, $"{stage}-metrics.jsonl");
        JobState state;
        await using (var file = new StreamWriter(metricsPath))
        {
            var watcher = new JobWatcher(client, jobs)
            {
                OnMetrics = step =>
                {
                    metrics.Add(step);
                    file.WriteLine(JsonSerializer.Serialize(step, CommandContext.JsonOptions));
                },
            };
            state = await watcher.WatchTrainingAsync(jobId);
        }
        _files[$"{stage}-metrics"] = metricsPath;
        var curve = Path.Combine(settings.OutputFolder, $"{stage}-loss.png");
        DemoFigures.WriteLossCurve(metrics, jobId, curve);
        _files[$"{stage}-loss-curve"] = curve;
        if (state != JobState.Completed) throw new DemoStageException(stage, $"training job {jobId} ended {state}: {(await client.GetTrainingStatusAsync(jobId)).FailureReason}");
        return jobId;
    }

    /// <summary>Samples, then exports the job's .npz and PNGs into the output folder; returns the sampling job's id.</summary>
    private async Task<string> SampleAsync(string name, RaeConfig config, SamplingSource source, int samples)
    {
        var id = $"{settings.RunId}-{name}";
        await client.StartSamplingAsync(JobSpecFactory.Sampling(config, JobSpecFactory.DefaultSamplingWorkload, source, samples, seed: 0, labels: "equal", SamplingUnitSize), id);
        _jobs[name] = id;
        var state = await new JobWatcher(client, jobs).WatchSamplingAsync(id);
        if (state != JobState.Completed) throw new DemoStageException(name, $"sampling job {id} ended {state}: {(await client.GetSamplingStatusAsync(id)).FailureReason}");
        var folder = Path.Combine(settings.OutputFolder, name);
        var files = await EvaluationTransfers.ExportSamplesAsync(client.Grains, id, folder, jobs.CancellationToken);
        var npz = files.FirstOrDefault(file => file.Name.EndsWith(".npz", StringComparison.OrdinalIgnoreCase))
            ?? throw new DemoStageException(name, $"sampling job {id} wrote no .npz (is stage_1 missing from the configuration?)");
        _files[name == "samples" ? "npz" : $"{name}-npz"] = Path.Combine(folder, npz.Name);
        _files[$"{name}-folder"] = folder;
        return id;
    }

    private async Task<double> EvaluateAsync(string name, string samplingJob, string testDataset)
    {
        var id = $"{settings.RunId}-{name}";
        var job = client.Grains.GetGrain<IEvaluationJobGrain>(id);
        await job.Start(new EvaluationJobSpec
        {
            Metric = EvaluationMetrics.Parse("fd_resnet18"),
            Samples = new EvaluationInput(EvaluationInputKind.SamplingJob, samplingJob, $"sampling job '{samplingJob}'"),
            Reference = new EvaluationInput(EvaluationInputKind.Dataset, testDataset, $"dataset '{testDataset}'"),
            UnitSize = 256,
            BatchSize = 64,
        });
        _jobs[name] = id;
        var state = await new JobWatcher(client, jobs).WatchEvaluationAsync(id);
        var status = await job.GetStatus();
        if (state != JobState.Completed || status.Result is null) throw new DemoStageException("eval", $"evaluation job {id} ended {state}: {status.FailureReason}");
        if (!double.IsFinite(status.Result.Value)) throw new DemoStageException("eval", $"evaluation job {id} scored {status.Result.Value}");
        return status.Result.Value;
    }

    /// <summary>The online fd_resnet18 curve of the Stage 2 job, drawn as its job page draws it; returns a short description.</summary>
    private string WriteEvaluationCurve(IReadOnlyList<OnlineEvaluationRecord> evaluations, string jobId)
    {
        var metric = evaluations[0].Metric;
        var path = Path.Combine(settings.OutputFolder, "stage2-eval.png");
        DemoFigures.WriteEvaluationCurve(evaluations, metric, jobId, path);
        _files["stage2-eval-curve"] = path;
        return string.Join(", ", evaluations.Select(e => double.IsFinite(e.Value)
            ? string.Create(CultureInfo.InvariantCulture, $"step {e.Step} {metric} {e.Value:F1}")
            : $"step {e.Step} failed: {e.Error}"));
    }

    /// <summary>A DiT^DH of the configuration with seeded initial weights, saved as safetensors: the untrained baseline.</summary>
    private static string WriteUntrainedDiT(RaeConfig config, string path)
    {
        if (config.Stage2?.Params is not DiTwDDTHeadParams parameters)
            throw new DemoStageException("sample-untrained", $"stage_2.target '{config.Stage2?.Target}' is not DiT^DH");
        using var generator = new Generator(0);
        using var model = new DiTwDDTHead(DiTwDDTHeadOptions.FromConfig(parameters), generator);
        SafeTensors.Save(path, model.state_dict());
        return path;
    }

    private async Task CopyBlobAsync(string blobPath, string filePath)
    {
        await using var source = await blobs.OpenReadAsync(blobPath, jobs.CancellationToken);
        await using var target = File.Create(filePath);
        await source.CopyToAsync(target, jobs.CancellationToken);
    }

    /// <summary>A --set assignment; the path as a JSON string is a double-quoted YAML scalar, safe for any character.</summary>
    private static string Assignment(string key, string path) => $"{key}={JsonSerializer.Serialize(path)}";
}
