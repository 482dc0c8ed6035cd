using RAE.GrainInterfaces;
using RAE.Grains.Sampling;

namespace RAE.Cluster.Tests.Sampling;

/// <summary>The job registry's sampling submissions and its view of the workloads the silos offer.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RegistrySubmissionTests(ClusterFixture fixture)
{
    private readonly SamplingTestFiles _files = SamplingTestFiles.Instance;

    private IJobRegistryGrain Registry => fixture.Grains.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey);

    [Fact]
    public async Task SubmitSamplingCreatesTheIdStartsTheJobAndListsIt()
    {
        var jobId = await Registry.SubmitSampling(_files.Spec(samples: 4, unitSize: 2, decode: false));

        Assert.StartsWith("sample-", jobId);
        var listed = await Registry.Get(jobId);
        Assert.Equal(JobKind.Sampling, listed.Kind);
        Assert.Equal(2, listed.Total);
        var status = await SamplingTestFiles.WaitForEndAsync(fixture, jobId);
        Assert.True(status.State == JobState.Completed, $"job ended {status.State}: {status.FailureReason}");
        var summary = (await Registry.List()).Single(j => j.JobId == jobId);
        Assert.Equal((JobState.Completed, 2L, 2L), (summary.State, summary.Progress, summary.Total));

        var chosen = "sample-chosen-" + Guid.NewGuid().ToString("N")[..8];
        Assert.Equal(chosen, await Registry.SubmitSamplingAs(chosen, _files.Spec(samples: 2, unitSize: 2, decode: false)));
        Assert.Equal(JobKind.Sampling, (await Registry.Get(chosen)).Kind);
        // The same submission again (a client retrying after a lost answer) is the job already started; another spec is refused.
        Assert.Equal(chosen, await Registry.SubmitSamplingAs(chosen, _files.Spec(samples: 2, unitSize: 2, decode: false)));
        var taken = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitSamplingAs(chosen, _files.Spec(samples: 4, unitSize: 2, decode: false)));
        Assert.Contains($"Job '{chosen}' already exists with another spec", taken.Message);
        await SamplingTestFiles.WaitForEndAsync(fixture, chosen);
    }

    [Fact]
    public async Task RefusedSamplingSubmissionsNameTheProblemAndListNothing()
    {
        var before = (await Registry.List()).Count;

        var unknown = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitSampling(_files.Spec(samples: 4, unitSize: 2) with { Workload = "dit-xl" }));
        Assert.Contains("Workload 'dit-xl' is unknown", unknown.Message);
        Assert.Contains($"known sampling workloads: {SamplingPlan.Workload}", unknown.Message);

        var noSamples = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitSampling(_files.Spec(samples: 0, unitSize: 2)));
        Assert.Contains("samples must be positive, got 0", noSamples.Message);

        // The configuration travels with its hash; text changed after validation is refused.
        var valid = _files.Spec(samples: 4, unitSize: 2);
        var tampered = valid with { Config = valid.Config! with { Yaml = valid.Config!.Yaml.Replace("num_steps: 4", "num_steps: 5", StringComparison.Ordinal) } };
        Assert.NotEqual(valid.Config.Yaml, tampered.Config!.Yaml);
        var badConfig = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitSampling(tampered));
        Assert.Contains("does not match its SHA-256", badConfig.Message);

        var badId = await Assert.ThrowsAsync<RaeJobException>(() => Registry.SubmitSamplingAs("a/b", _files.Spec(samples: 4, unitSize: 2)));
        Assert.Contains("'a/b' is not usable", badId.Message);

        Assert.Equal(before, (await Registry.List()).Count);
    }

    [Fact]
    public async Task GetWorkloadsNamesEveryTrainingAndSamplingWorkloadWithTheSilosAndDevicesOfferingIt()
    {
        var hosts = await fixture.Grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        var silos = hosts.Keys.Select(s => s.ToParsableString()).Order(StringComparer.Ordinal).ToList();

        var offers = await Registry.GetWorkloads();

        Assert.Equal([(JobKind.Training, "dit-dh"), (JobKind.Training, "rae-decoder"), (JobKind.Training, "tiny-mlp"), (JobKind.Sampling, SamplingPlan.Workload)],
            offers.Select(o => (o.Kind, o.Workload)));
        Assert.All(offers, offer =>
        {
            Assert.Equal(silos, offer.Placements.Select(p => p.SiloAddress));
            Assert.All(offer.Placements, p => Assert.Equal(["cpu"], p.Devices));
        });
    }
}
