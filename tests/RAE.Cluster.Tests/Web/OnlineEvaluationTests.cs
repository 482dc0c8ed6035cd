using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Cluster.Tests.Client;
using RAE.Cluster.Tests.Datasets;
using RAE.Cluster.Tests.Evaluation;
using RAE.Cluster.Tests.Sampling;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Training;
using RAE.Models.Data;
using RAE.Silo.Web;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Cluster.Tests.Web;

/// <summary>
/// A tiny Stage 2 job with eval.eval_interval 2 on an in-process silo: the metric is recorded at steps 2 and 4, equals an
/// evaluation job of a sampling job run by hand from the same checkpoint with the same seed, leaves the loss curve bit for
/// bit as the same job without evaluation, and its page draws the metric curve in headless Chromium.
/// </summary>
public sealed class OnlineEvaluationTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>, IDisposable
{
    private readonly TestImageFolder _images = new();

    public void Dispose() => _images.Dispose();

    private IGrainFactory Grains => silo.Services.GetRequiredService<IGrainFactory>();

    /// <summary>ddt_tiny's architecture (trained from scratch) with the sampling tests' tiny decoder, so samples decode to 8x8 images.</summary>
    private static string Config(string referenceDataset) => SamplingTestFiles.Instance.ConfigYaml(decode: true) + $"""

        data:
          source: synthetic-latents
          num_samples: 64
          seed: 3
        transport:
          params:
            path_type: 'Linear'
            prediction: 'velocity'
            time_dist_type: 'logit-normal_0_1'
        training:
          epochs: 100
          max_steps: 4
          global_batch_size: 8
          ema_decay: 0.9
          clip_grad: 1.0
          global_seed: 7
          optimizer:
            lr: 5.0e-3
            betas: [0.9, 0.95]
            weight_decay: 0.01
        eval:
          eval_interval: 2
          num_samples: 4
          seed: 5
          data_path: {referenceDataset}
        """;

    private async Task<string> AddReferenceDatasetAsync()
    {
        _images.AddImages("cat", 3);
        _images.AddImages("dog", 2);
        var dataset = "online-ref-" + Guid.NewGuid().ToString("N")[..8];
        using var output = new StringWriter();
        using var error = new StringWriter();
        var added = await DatasetsAddCommand.AddAsync(Grains, dataset, ImageSources.Open(_images.Root), new DatasetBuildOptions { ShardSize = 4 },
            new CommandContext(output, error, Json: false, Live: false, CancellationToken.None));
        Assert.True(added == 0, error.ToString());
        return dataset;
    }

    [Fact]
    public async Task AStage2JobRecordsItsMetricAtEveryEvalStepAsAnOfflineEvaluationWouldWithoutChangingItsLossCurve()
    {
        var dataset = await AddReferenceDatasetAsync();
        var config = RaeConfig.Parse(Config(dataset), "online evaluation test config", ["stage_2.ckpt=null"]);
        var spec = TrainingJobSpecs.FromConfig(config, ranks: 1) with { CheckpointInterval = 0 };
        var online = Assert.IsType<OnlineEvaluationSpec>(spec.OnlineEvaluation);
        Assert.Equal((2L, EvaluationMetric.FdResNet18, 4, 5L, dataset), (online.Interval, online.Metric, online.Samples, online.Seed, online.ReferenceDataset));

        var registry = Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var withEval = await registry.SubmitTraining(spec);
        var withoutEval = await registry.SubmitTraining(spec with { OnlineEvaluation = null });
        var evaluated = await WaitForTrainingAsync(withEval);
        var plain = await WaitForTrainingAsync(withoutEval);

        Assert.Equal([2L, 4L], evaluated.Evaluations.Select(e => e.Step));
        Assert.All(evaluated.Evaluations, e => Assert.True(e.Error is null && e.Metric == "fd_resnet18" && double.IsFinite(e.Value) && e.Value > 0 && e.Images == 4, e.ToString()));
        Assert.Empty(plain.Evaluations);
        var coordinator = Grains.GetGrain<ITrainingCoordinatorGrain>(withEval);
        var evaluatedCurve = (await coordinator.GetMetrics(0)).Select(m => (m.Step, m.Loss, m.GradientNorm, m.LearningRate)).ToList();
        var plainCurve = (await Grains.GetGrain<ITrainingCoordinatorGrain>(withoutEval).GetMetrics(0)).Select(m => (m.Step, m.Loss, m.GradientNorm, m.LearningRate)).ToList();
        Assert.Equal(4, evaluatedCurve.Count);
        Assert.Equal(plainCurve, evaluatedCurve); // bit for bit: doubles compared exactly

        // By hand, as `rae sample --from-job JOB --step 2 --seed 5 -n 4` and `rae eval SAMPLING --ref DATASET` run it.
        var sampling = await registry.SubmitSampling(SamplingJobSpecs.FromTrainingJob(withEval, step: 2) with { Samples = 4, UnitSize = 4, Seed = 5 });
        var sampled = await WaitForSamplingAsync(sampling);
        Assert.Equal(JobState.Completed, sampled.State);
        var evaluationId = "online-check-" + Guid.NewGuid().ToString("N")[..8];
        await Grains.GetGrain<IEvaluationJobGrain>(evaluationId).Start(new EvaluationJobSpec
        {
            Samples = new EvaluationInput(EvaluationInputKind.SamplingJob, sampling),
            Reference = new EvaluationInput(EvaluationInputKind.Dataset, dataset),
        });
        var direct = await EvaluationTestData.WaitForEndAsync(Grains, evaluationId);
        Assert.True(direct.State == JobState.Completed, direct.FailureReason);
        Assert.Equal(direct.Result!.Value, evaluated.Evaluations[0].Value);
        Assert.NotEqual(evaluated.Evaluations[0].Value, evaluated.Evaluations[1].Value);

        await AssertPagesShowTheEvaluationAsync(withEval, evaluated, TrainingCoordinatorGrain.OnlineEvaluationJobId(withEval, 2, EvaluationMetric.FdResNet18));
    }

    [Fact]
    public async Task AJobWhoseCoordinatorIsDeactivatedMidEvaluationContinuesTheSameChildJobsAndScoresAsAnUndisturbedRun()
    {
        var dataset = await AddReferenceDatasetAsync();
        // Three steps: the evaluation of step 2 is interrupted, and the run goes on to step 3 after it.
        var config = RaeConfig.Parse(Config(dataset), "online evaluation resume test config", ["stage_2.ckpt=null", "training.max_steps=3"]);
        var plainSpec = TrainingJobSpecs.FromConfig(config, ranks: 1) with { CheckpointInterval = 0 };
        // A pause after each child unit keeps the step-2 sampling job running while its coordinator goes away.
        var spec = plainSpec with { OnlineEvaluation = plainSpec.OnlineEvaluation! with { UnitDelay = TimeSpan.FromSeconds(1) } };
        var registry = Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);
        var disturbedId = await registry.SubmitTraining(spec);
        var undisturbedId = await registry.SubmitTraining(plainSpec);
        var coordinator = Grains.GetGrain<ITrainingCoordinatorGrain>(disturbedId);

        var samplingId = TrainingCoordinatorGrain.OnlineSamplingJobId(disturbedId, 2);
        var sampling = Grains.GetGrain<ISamplingJobGrain>(samplingId);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        SamplingJobStatus? running = null;
        while (running?.State != JobState.Running)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the online sampling job {samplingId} never ran (last: {running?.State})");
            await Task.Delay(50);
            try { running = await sampling.GetStatus(); } catch (RaeJobException) { running = null; }
            Assert.False(running?.State == JobState.Completed, "the sampling job ended before the coordinator could be deactivated");
        }
        var before = await coordinator.GetStatus();
        await coordinator.Cast<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();
        await coordinator.Resume(); // as the silo's resume service does
        // The next activation goes on from the step's checkpoint in a new group, and a deactivation is not a failed attempt.
        var resumed = await coordinator.GetStatus();
        while (resumed.GroupGeneration == before.GroupGeneration && resumed.State != JobState.Completed)
        {
            Assert.True(DateTime.UtcNow < deadline, "the job never formed a new group after its coordinator was deactivated");
            await Task.Delay(50);
            resumed = await coordinator.GetStatus();
        }
        Assert.True((resumed.FailedAttempts, resumed.LastError) == (0, null), $"the deactivation counted as failed attempt {resumed.FailedAttempts}: {resumed.LastError}");

        var disturbed = await WaitForTrainingAsync(disturbedId);
        var undisturbed = await WaitForTrainingAsync(undisturbedId);
        Assert.True(disturbed.GroupGeneration > before.GroupGeneration, $"the run did not stop: group generation {disturbed.GroupGeneration} (was {before.GroupGeneration})");
        Assert.Equal([2L], disturbed.Evaluations.Select(e => e.Step));
        Assert.Equal(3, disturbed.Step);
        Assert.Equal(undisturbed.Evaluations.Select(e => (e.Step, e.Metric, e.Value, e.Images)), disturbed.Evaluations.Select(e => (e.Step, e.Metric, e.Value, e.Images)));
        Assert.All(disturbed.Evaluations, e => Assert.True(e.Error is null && double.IsFinite(e.Value), e.ToString()));

        // The same child jobs went on: the one running at the deactivation is the step's, and no other child was made.
        Assert.Equal(samplingId, disturbed.Evaluations[0].SamplingJobId);
        var continued = await sampling.GetStatus();
        Assert.Equal((JobState.Completed, running.CreatedAt), (continued.State, continued.CreatedAt));
        var children = (await registry.List()).Select(j => j.JobId).Where(id => id.StartsWith(disturbedId + "-eval-", StringComparison.Ordinal)).Order(StringComparer.Ordinal);
        Assert.Equal([samplingId, TrainingCoordinatorGrain.OnlineEvaluationJobId(disturbedId, 2, EvaluationMetric.FdResNet18)], children);
        var curve = (await coordinator.GetMetrics(0)).Select(m => (m.Step, m.Loss)).ToList();
        Assert.Equal((await Grains.GetGrain<ITrainingCoordinatorGrain>(undisturbedId).GetMetrics(0)).Select(m => (m.Step, m.Loss)), curve);
    }

    private async Task AssertPagesShowTheEvaluationAsync(string jobId, TrainingJobStatus status, string onlineEvaluationJob)
    {
        var baseUrl = $"http://127.0.0.1:{silo.WebPort}";
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(60) };
        using (var curve = Image.Load<Rgba32>(await http.GetByteArrayAsync($"/jobs/{jobId}/curves/{MetricCurves.EvaluationCurveName}.png")))
            Assert.True(JobPagesRenderingTests.DistinctColours(curve) > 10, "the metric curve PNG is (nearly) uniform");
        using (var json = JsonDocument.Parse(await http.GetStringAsync($"/api/jobs/{jobId}")))
            Assert.Equal([2L, 4L], json.RootElement.GetProperty("evaluations").EnumerateArray().Select(e => e.GetProperty("step").GetInt64()));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await HeadlessChromium.LaunchAsync(playwright);
        var page = await browser.NewPageAsync();
        await page.GotoAsync($"{baseUrl}/jobs/{jobId}", new PageGotoOptions { WaitUntil = WaitUntilState.Load });
        var images = await HeadlessChromium.ImagesAsync(page);
        var metricCurve = Assert.Single(images, image => image.Id == "curve-" + MetricCurves.EvaluationCurveName);
        Assert.True(metricCurve.Complete && metricCurve.NaturalWidth == MetricCurves.Width, $"the metric curve did not render: {metricCurve}");
        Assert.Equal(0, await page.EvaluateAsync<int>("() => document.scripts.length"));

        // The online evaluation job has a page of its own with its units and value.
        var evaluationPage = await page.GotoAsync($"{baseUrl}/jobs/{onlineEvaluationJob}", new PageGotoOptions { WaitUntil = WaitUntilState.Load });
        Assert.Equal(200, evaluationPage!.Status);
        Assert.Equal(status.Evaluations[0].Value.ToString("G8", CultureInfo.InvariantCulture), await page.InnerTextAsync("#metric-value"));
        var evaluation = await Grains.GetGrain<IEvaluationJobGrain>(onlineEvaluationJob).GetStatus();
        Assert.Equal($"{evaluation.UnitsTotal} of {evaluation.UnitsTotal}", await page.InnerTextAsync("#units"));
    }

    private async Task<SamplingJobStatus> WaitForSamplingAsync(string jobId)
    {
        var job = Grains.GetGrain<ISamplingJobGrain>(jobId);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            var status = await job.GetStatus();
            if (status.State is JobState.Completed or JobState.Failed or JobState.Cancelled) return status;
            Assert.True(DateTime.UtcNow < deadline, $"sampling job {jobId} is still {status.State} after 120 s");
            await Task.Delay(100);
        }
    }

    private async Task<TrainingJobStatus> WaitForTrainingAsync(string jobId)
    {
        var coordinator = Grains.GetGrain<ITrainingCoordinatorGrain>(jobId);
        var deadline = DateTime.UtcNow.AddSeconds(180);
        while (true)
        {
            var status = await coordinator.GetStatus();
            if (status.State is JobState.Completed) return status;
            Assert.False(status.State is JobState.Failed or JobState.Cancelled, $"training job {jobId} ended {status.State}: {status.FailureReason}");
            Assert.True(DateTime.UtcNow < deadline, $"training job {jobId} is still {status.State} at step {status.Step} after 180 s");
            await Task.Delay(200);
        }
    }
}
