using RAE.GrainInterfaces;
using RAE.Grains.Sampling;
using RAE.Grains.Storage;
using RAE.Models.IO;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Sampling;

[Collection(ClusterCollection.Name)]
public sealed class SamplingJobTests(ClusterFixture fixture)
{
    private readonly SamplingTestFiles _files = SamplingTestFiles.Instance;

    private static string NewJobId() => "sample-" + Guid.NewGuid().ToString("N")[..10];

    private ISamplingJobGrain Job(string jobId) => fixture.Grains.GetGrain<ISamplingJobGrain>(jobId);

    private async Task<(string JobId, SamplingJobStatus Status)> RunAsync(SamplingJobSpec spec)
    {
        var jobId = NewJobId();
        await Job(jobId).Start(spec);
        var status = await SamplingTestFiles.WaitForEndAsync(fixture, jobId);
        Assert.True(status.State == JobState.Completed, $"job {jobId} ended {status.State}: {status.FailureReason}");
        return (jobId, status);
    }

    [Fact]
    public async Task EqualLabelsGiveAnNpzOfTheRightShapeDtypeAndExactClassCounts()
    {
        var (jobId, status) = await RunAsync(_files.Spec(samples: 20, unitSize: 6));

        Assert.Equal(4, status.UnitsTotal);
        Assert.Equal(4, status.UnitsDone);
        Assert.Equal(20, status.SamplesDone);
        Assert.True(status.SamplesPerSecond > 0);
        Assert.Equal($"samples/{jobId}/samples.npz", status.OutputLocation);
        var blobs = SamplingTestFiles.Blobs(fixture);
        var npzPath = Path.Combine(fixture.DataFolder, "npz-" + jobId + ".npz");
        await File.WriteAllBytesAsync(npzPath, (await blobs.GetAsync(status.OutputLocation!)).Data);
        using var reader = NpzReader.Open(npzPath);
        Assert.Equal([Npz.ImagesKey], reader.Keys);
        var header = reader.GetHeader(Npz.ImagesKey);
        Assert.Equal(ScalarType.Byte, header.Dtype);
        Assert.Equal([20L, 8, 8, 3], header.Shape);
        using var images = reader.ReadArray(Npz.ImagesKey);
        Assert.True(images.max().item<byte>() > images.min().item<byte>(), "decoded images must not be constant");

        var labels = new List<long>();
        for (var unit = 0; unit < status.UnitsTotal; unit++)
        {
            var content = await blobs.GetAsync($"samples/{jobId}/units/{unit:D6}.safetensors");
            using var stream = new MemoryStream(content.Data);
            var tensors = SafeTensors.Load(stream, "unit");
            labels.AddRange(tensors[SamplingUnitFiles.LabelsKey].data<long>().ToArray());
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
        Assert.Equal(20, labels.Count);
        Assert.All(Enumerable.Range(0, 10), label => Assert.Equal(2, labels.Count(l => l == label)));
        Assert.Equal(SamplingLabels.Compute("equal", 20, 10, 7).Select(l => (long)l), labels);

        // PNG {index:06d} holds the same pixels as row index of the npz.
        var png = await blobs.GetAsync($"samples/{jobId}/images/000013.png");
        using var image = Image.Load<Rgb24>(png.Data);
        var pixels = new byte[8 * 8 * 3];
        image.CopyPixelDataTo(pixels);
        Assert.Equal(images[13].contiguous().data<byte>().ToArray(), pixels);
        Assert.False(await blobs.ExistsAsync($"samples/{jobId}/images/000020.png"));
    }

    [Fact]
    public async Task SameSeedGivesIdenticalNpzBytesWithOneOrThreeWorkers()
    {
        var threeWorkers = await RunAsync(_files.Spec(samples: 12, unitSize: 2, seed: 5) with { MaxWorkers = 3 });
        var again = await RunAsync(_files.Spec(samples: 12, unitSize: 2, seed: 5) with { MaxWorkers = 3 });
        var oneWorker = await RunAsync(_files.Spec(samples: 12, unitSize: 2, seed: 5) with { MaxWorkers = 1 });
        var otherSeed = await RunAsync(_files.Spec(samples: 12, unitSize: 2, seed: 6) with { MaxWorkers = 3 });

        var blobs = SamplingTestFiles.Blobs(fixture);
        async Task<byte[]> Bytes((string JobId, SamplingJobStatus Status) run) => (await blobs.GetAsync(run.Status.OutputLocation!)).Data;
        var reference = await Bytes(threeWorkers);
        Assert.Equal(reference, await Bytes(again));
        Assert.Equal(reference, await Bytes(oneWorker));
        Assert.NotEqual(reference, await Bytes(otherSeed));
    }

    [Fact]
    public async Task ACancelledJobResumesWithoutRedoingAnyUnit()
    {
        using var executions = new UnitExecutionCounter();
        var jobId = NewJobId();
        var spec = _files.Spec(samples: 16, unitSize: 2) with { MaxWorkers = 2, UnitDelay = TimeSpan.FromMilliseconds(250) };
        await Job(jobId).Start(spec);
        await WaitForUnitsAsync(jobId, 3);
        await Job(jobId).Cancel();
        var cancelled = await Job(jobId).GetStatus();
        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.InRange(cancelled.UnitsDone, 3, 7);

        await Job(jobId).Resume();
        var status = await SamplingTestFiles.WaitForEndAsync(fixture, jobId);

        Assert.Equal(JobState.Completed, status.State);
        Assert.Equal(0, status.Resumptions);
        Assert.Equal(8, status.UnitsDone);
        Assert.All(Enumerable.Range(0, 8), unit => Assert.Equal(1, executions.Count(jobId, unit)));
    }

    [Fact]
    public async Task ADeactivatedJobContinuesOnReactivationWithoutRedoingFinishedUnits()
    {
        using var executions = new UnitExecutionCounter();
        var jobId = NewJobId();
        // One worker takes the units in order, so the first k finished units are units 0..k-1.
        var spec = _files.Spec(samples: 12, unitSize: 2, decode: false) with { MaxWorkers = 1, UnitDelay = TimeSpan.FromMilliseconds(300) };
        await Job(jobId).Start(spec);
        var before = await WaitForUnitsAsync(jobId, 2);
        await Job(jobId).Cast<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();

        var status = await SamplingTestFiles.WaitForEndAsync(fixture, jobId);

        Assert.Equal(JobState.Completed, status.State);
        Assert.Equal(1, status.Resumptions);
        Assert.Equal(6, status.UnitsDone);
        Assert.All(Enumerable.Range(0, before), unit => Assert.Equal(1, executions.Count(jobId, unit)));
        // At most the unit in flight when the activation went away is computed twice.
        Assert.InRange(executions.Total(jobId), 6, 7);
    }

    [Fact]
    public async Task WithoutADecoderEachUnitKeepsItsLatents()
    {
        var (jobId, status) = await RunAsync(_files.Spec(samples: 5, unitSize: 2, labels: "random", decode: false));

        Assert.Equal(3, status.UnitsDone);
        Assert.Equal($"samples/{jobId}/units", status.OutputLocation);
        Assert.Null(status.ImagesLocation);
        var blobs = SamplingTestFiles.Blobs(fixture);
        var content = await blobs.GetAsync($"samples/{jobId}/units/000002.safetensors");
        using var stream = new MemoryStream(content.Data);
        var tensors = SafeTensors.Load(stream, "unit");
        Assert.Equal([1L, 8, 4, 4], tensors[SamplingUnitFiles.LatentsKey].shape);
        Assert.False(tensors.ContainsKey(SamplingUnitFiles.ImagesKey));
        Assert.Equal(SamplingLabels.Compute("random", 5, 10, 7)[4], (int)tensors[SamplingUnitFiles.LabelsKey].data<long>()[0]);
        foreach (var tensor in tensors.Values) tensor.Dispose();
        Assert.False(await blobs.ExistsAsync($"samples/{jobId}/samples.npz"));
    }

    [Fact]
    public async Task AutoguidanceUsesTheGuideModelAndStaysDeterministic()
    {
        var (cfgJob, _) = await RunAsync(_files.Spec(samples: 3, unitSize: 3, decode: false));
        var (guidedJob, _) = await RunAsync(_files.Spec(samples: 3, unitSize: 3, decode: false, autoguidance: true));
        var (againJob, _) = await RunAsync(_files.Spec(samples: 3, unitSize: 3, decode: false, autoguidance: true));

        var blobs = SamplingTestFiles.Blobs(fixture);
        async Task<byte[]> Unit(string jobId) => (await blobs.GetAsync($"samples/{jobId}/units/000000.safetensors")).Data;
        Assert.Equal(await Unit(guidedJob), await Unit(againJob));
        Assert.NotEqual(await Unit(cfgJob), await Unit(guidedJob));
    }

    [Fact]
    public async Task BadInputIsRefusedWithAClearErrorAndNothingIsStarted()
    {
        var missing = Path.Combine(_files.Folder, "no-such-checkpoint.safetensors");
        var cases = new (SamplingJobSpec Spec, string Expected)[]
        {
            (_files.Spec(4, 2) with { CheckpointPath = missing }, missing),
            (_files.Spec(0, 2), "samples must be positive, got 0"),
            (_files.Spec(4, 2, labels: "balanced"), "label mode 'balanced' is unknown"),
            (_files.Spec(4, 0), "unit size must be positive"),
            (_files.Spec(4, 2) with { Classes = 11 }, "classes must be in [1, 10]"),
            (_files.Spec(4, 2) with { MaxWorkers = -1 }, "MaxWorkers must be 0 (every device) or positive, got -1"),
            (_files.Spec(4, 2) with { UnitDelay = TimeSpan.FromSeconds(-1) }, "UnitDelay must be zero or positive"),
            (_files.Spec(4, 2) with { Workload = "tiny-mlp" }, "workload 'tiny-mlp'"),
        };
        foreach (var (spec, expected) in cases)
        {
            var jobId = NewJobId();
            var error = await Assert.ThrowsAsync<RaeJobException>(() => Job(jobId).Start(spec));
            Assert.Contains(expected, error.Message);
            var unknown = await Assert.ThrowsAsync<RaeJobException>(() => Job(jobId).GetStatus());
            Assert.Contains("unknown", unknown.Message);
        }
    }

    private async Task<int> WaitForUnitsAsync(string jobId, int units)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var status = await Job(jobId).GetStatus();
            if (status.UnitsDone >= units) return status.UnitsDone;
            Assert.True(status.State is JobState.Pending or JobState.Running, $"job {jobId} ended {status.State} before {units} units: {status.FailureReason}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {jobId} has {status.UnitsDone} units after 60 s");
            await Task.Delay(20);
        }
    }
}
