using System.Security.Cryptography;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Cluster.Tests.Datasets;
using RAE.Cluster.Tests.Sampling;
using RAE.GrainInterfaces;
using RAE.Grains.Evaluation;
using RAE.Models.Data;
using RAE.Models.IO;

namespace RAE.Cluster.Tests.Evaluation;

/// <summary>Evaluation jobs on the three-silo test cluster: rank-count independence, the dataset statistics cache, samples export and refusals.</summary>
[Collection(ClusterCollection.Name)]
public sealed class EvaluationJobTests(ClusterFixture fixture) : IDisposable
{
    private readonly TestImageFolder _images = new();

    public void Dispose() => _images.Dispose();

    private static string NewId(string stem) => $"{stem}-{Guid.NewGuid().ToString("N")[..8]}";

    private string Folder => Path.Combine(fixture.DataFolder, "eval-jobs");

    private async Task<string> UploadAsync(string name, TorchSharp.torch.Tensor images) =>
        await EvaluationTransfers.UploadAsync(fixture.Grains, EvaluationTestData.WriteNpz(Folder, NewId(name) + ".npz", images));

    private async Task<EvaluationJobStatus> RunAsync(EvaluationJobSpec spec)
    {
        var jobId = NewId("eval");
        await fixture.Grains.GetGrain<IEvaluationJobGrain>(jobId).Start(spec);
        var status = await EvaluationTestData.WaitForEndAsync(fixture.Grains, jobId);
        Assert.True(status.State == JobState.Completed, $"job {jobId} ended {status.State}: {status.FailureReason}");
        return status;
    }

    [Fact]
    public async Task OneWorkerAndThreeWorkersGiveTheSameScoreBitForBit()
    {
        using var samples = EvaluationTestData.Images(5, 8, seed: 3);
        using var reference = EvaluationTestData.Images(3, 8, seed: 4);
        var spec = new EvaluationJobSpec
        {
            Samples = new EvaluationInput(EvaluationInputKind.NpzBlob, await UploadAsync("samples", samples)),
            Reference = new EvaluationInput(EvaluationInputKind.NpzBlob, await UploadAsync("reference", reference)),
            UnitSize = 2,
            BatchSize = 2,
        };
        var three = await RunAsync(spec);
        var one = await RunAsync(spec with { MaxWorkers = 1 });

        Assert.Equal(5, three.UnitsTotal);
        Assert.Equal(three.Result!.Value, one.Result!.Value);
        Assert.True(three.Result.Value > 0);
        Assert.Equal(5, three.Result.SampleImages);
        Assert.Equal(3, three.Result.ReferenceImages);
    }

    [Fact]
    public async Task DatasetReferenceStatisticsAreComputedOnceThenReadFromTheCache()
    {
        _images.AddImages("cat", 3);
        _images.AddImages("dog", 2);
        var dataset = NewId("evalset");
        using (var output = new StringWriter())
        using (var error = new StringWriter())
        {
            var added = await DatasetsAddCommand.AddAsync(fixture.Grains, dataset, ImageSources.Open(_images.Root), new DatasetBuildOptions { ShardSize = 4 },
                new CommandContext(output, error, Json: false, Live: false, CancellationToken.None));
            Assert.True(added == 0, error.ToString());
        }
        using var samples = EvaluationTestData.Images(3, 8, seed: 5);
        var spec = new EvaluationJobSpec
        {
            Samples = new EvaluationInput(EvaluationInputKind.NpzBlob, await UploadAsync("samples", samples)),
            Reference = new EvaluationInput(EvaluationInputKind.Dataset, dataset),
            UnitSize = 2,
            BatchSize = 2,
        };
        using var executions = new EvaluationUnitCounter();

        var first = await RunAsync(spec);
        var second = await RunAsync(spec);

        var cache = $"datasets/{dataset}/stats/fd_resnet18-8.npz";
        Assert.Equal(cache, first.Result!.ReferenceStatistics);
        Assert.False(first.Result.ReferenceStatisticsReused);
        Assert.Equal(3, executions.Side(first.JobId, EvaluationSide.Reference)); // 5 images in units of 2
        Assert.Equal(2, second.UnitsTotal);
        Assert.Equal(0, executions.Side(second.JobId, EvaluationSide.Reference));
        Assert.True(second.Result!.ReferenceStatisticsReused);
        Assert.Equal(cache, second.Result.ReferenceStatistics);
        Assert.Equal(first.Result.Value, second.Result.Value, 9);
        Assert.Equal(5, first.Result.ReferenceImages);

        var blobs = SamplingTestFiles.Blobs(fixture);
        var cached = Path.Combine(Folder, NewId("cached") + ".npz");
        await File.WriteAllBytesAsync(cached, (await blobs.GetAsync(cache)).Data);
        using var statistics = Npz.LoadFidStatistics(cached);
        Assert.Equal([512L], statistics.Mu.shape);
        Assert.Equal([512L, 512L], statistics.Sigma.shape);
    }

    [Fact]
    public async Task AReferenceNpzWithMuAndSigmaIsUsedAsGivenAndAWrongDimensionIsNamed()
    {
        using var samples = EvaluationTestData.Images(4, 8, seed: 8);
        using var reference = EvaluationTestData.Images(5, 8, seed: 9);
        Directory.CreateDirectory(Folder);
        var statisticsFile = EvaluationTestData.WriteResNetStatistics(Folder, NewId("adm-ref") + ".npz", reference, batchSize: 2);
        var statisticsBlob = await EvaluationTransfers.UploadAsync(fixture.Grains, statisticsFile);
        using var executions = new EvaluationUnitCounter();

        var status = await RunAsync(new EvaluationJobSpec
        {
            Samples = new EvaluationInput(EvaluationInputKind.NpzBlob, await UploadAsync("samples", samples)),
            Reference = new EvaluationInput(EvaluationInputKind.NpzBlob, statisticsBlob),
            UnitSize = 2,
            BatchSize = 2,
        });

        Assert.Equal(2, status.UnitsTotal);
        Assert.Equal(0, executions.Side(status.JobId, EvaluationSide.Reference));
        Assert.True(status.Result!.ReferenceStatisticsReused);
        Assert.Equal(statisticsBlob, status.Result.ReferenceStatistics);
        var expected = EvaluationTestData.DirectFdResNet18(samples, reference, batchSize: 2);
        Assert.True(Math.Abs(status.Result.Value - expected) <= 1e-12 * Math.Max(1, Math.Abs(expected)), $"job {status.Result.Value:R}, direct {expected:R}");

        var wrongFile = Path.Combine(Folder, NewId("inception-like") + ".npz");
        using (var mu = TorchSharp.torch.zeros(16, dtype: TorchSharp.torch.ScalarType.Float64))
        using (var sigma = TorchSharp.torch.eye(16, dtype: TorchSharp.torch.ScalarType.Float64))
            Npz.Save(wrongFile, [new("mu", mu), new("sigma", sigma)]);
        var jobId = NewId("eval-wrong-stats");
        await fixture.Grains.GetGrain<IEvaluationJobGrain>(jobId).Start(new EvaluationJobSpec
        {
            Samples = new EvaluationInput(EvaluationInputKind.NpzBlob, await UploadAsync("samples", samples)),
            Reference = new EvaluationInput(EvaluationInputKind.NpzBlob, await EvaluationTransfers.UploadAsync(fixture.Grains, wrongFile)),
            UnitSize = 4,
            BatchSize = 4,
        });
        var failed = await EvaluationTestData.WaitForEndAsync(fixture.Grains, jobId);
        Assert.Equal(JobState.Failed, failed.State);
        Assert.Contains("the statistics are 16-d, the metric's features are 512-d", failed.FailureReason);
    }

    [Fact]
    public async Task SamplesExportFetchesTheNpzAndEveryPngWithTheirChecksums()
    {
        var samplingJob = NewId("sample");
        await fixture.Grains.GetGrain<ISamplingJobGrain>(samplingJob).Start(SamplingTestFiles.Instance.Spec(samples: 5, unitSize: 3));
        var sampled = await SamplingTestFiles.WaitForEndAsync(fixture, samplingJob);
        Assert.Equal(JobState.Completed, sampled.State);
        var output = Path.Combine(Folder, NewId("export"));

        var files = await EvaluationTransfers.ExportSamplesAsync(fixture.Grains, samplingJob, output);

        Assert.Equal(["images/000000.png", "images/000001.png", "images/000002.png", "images/000003.png", "images/000004.png", "samples.npz"],
            files.Select(f => f.Name).Order(StringComparer.Ordinal));
        var blobs = SamplingTestFiles.Blobs(fixture);
        foreach (var file in files)
        {
            var local = await File.ReadAllBytesAsync(Path.Combine(output, file.Name));
            Assert.Equal((await blobs.GetAsync($"samples/{samplingJob}/{file.Name}")).Data, local);
            Assert.Equal(file.Sha256, Convert.ToHexStringLower(SHA256.HashData(local)));
        }
        using var reader = NpzReader.Open(Path.Combine(output, "samples.npz"));
        Assert.Equal([5L, 8, 8, 3], reader.GetHeader(Npz.ImagesKey).Shape);

        // The exported .npz is what rae eval reads: a sampling job id is an input as well.
        var evaluation = await RunAsync(new EvaluationJobSpec
        {
            Samples = new EvaluationInput(EvaluationInputKind.SamplingJob, samplingJob),
            Reference = new EvaluationInput(EvaluationInputKind.NpzBlob, await EvaluationTransfers.UploadAsync(fixture.Grains, Path.Combine(output, "samples.npz"))),
            Metric = EvaluationMetric.Psnr,
            UnitSize = 2,
            BatchSize = 2,
        });
        Assert.Equal(100.0, evaluation.Result!.Value, 4); // identical images: the reference's clamped 100 dB
    }

    [Fact]
    public async Task BadInputIsRefusedWithAClearErrorBeforeAnythingStarts()
    {
        using var eight = EvaluationTestData.Images(4, 8, seed: 6);
        using var five = EvaluationTestData.Images(5, 8, seed: 7);
        var eightBlob = await UploadAsync("four", eight);
        var fiveBlob = await UploadAsync("five", five);
        var missingWeights = Path.Combine(Folder, "no-such-inception.pth");
        var cases = new (EvaluationJobSpec Spec, string Expected)[]
        {
            (new() { Samples = new(EvaluationInputKind.SamplingJob, "sample-nope"), Reference = new(EvaluationInputKind.NpzBlob, eightBlob) }, "sampling job 'sample-nope', which is unknown"),
            (new() { Samples = new(EvaluationInputKind.NpzBlob, eightBlob), Reference = new(EvaluationInputKind.Dataset, "no-such-set") }, "dataset 'no-such-set', which is unknown"),
            (new() { Metric = EvaluationMetric.Psnr, Samples = new(EvaluationInputKind.NpzBlob, eightBlob), Reference = new(EvaluationInputKind.NpzBlob, fiveBlob) }, "psnr compares two image sets of equal size"),
            (new() { Metric = EvaluationMetric.Fid, Samples = new(EvaluationInputKind.NpzBlob, eightBlob), Reference = new(EvaluationInputKind.NpzBlob, fiveBlob) }, "pt_inception-2015-12-05"),
            (new() { Metric = EvaluationMetric.Rfid, InceptionWeightsPath = missingWeights, Samples = new(EvaluationInputKind.NpzBlob, eightBlob), Reference = new(EvaluationInputKind.NpzBlob, eightBlob) }, $"'{missingWeights}' does not exist"),
            (new() { Samples = new(EvaluationInputKind.NpzBlob, "uploads/none/x.npz"), Reference = new(EvaluationInputKind.NpzBlob, eightBlob) }, "is not in the blob store"),
            (new() { UnitSize = 0, Samples = new(EvaluationInputKind.NpzBlob, eightBlob), Reference = new(EvaluationInputKind.NpzBlob, eightBlob) }, "UnitSize must be positive"),
        };
        foreach (var (spec, expected) in cases)
        {
            var jobId = NewId("eval-bad");
            var error = await Assert.ThrowsAsync<RaeJobException>(() => fixture.Grains.GetGrain<IEvaluationJobGrain>(jobId).Start(spec));
            Assert.Contains(expected, error.Message);
            var unknown = await Assert.ThrowsAsync<RaeJobException>(() => fixture.Grains.GetGrain<IEvaluationJobGrain>(jobId).GetStatus());
            Assert.Contains("unknown", unknown.Message);
        }
        var export = await Assert.ThrowsAsync<RaeJobException>(() => EvaluationTransfers.ExportSamplesAsync(fixture.Grains, "sample-nope", Path.Combine(Folder, "x")));
        Assert.Contains("unknown", export.Message);
    }
}
