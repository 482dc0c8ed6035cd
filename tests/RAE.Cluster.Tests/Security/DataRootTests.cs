using RAE.Cluster.Tests.Sampling;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Security;

/// <summary>
/// A sampling job may name files only inside the silo's data roots (the test silos': the temporary folder and the golden
/// fixtures). Outside them the job is refused before the file system is looked at: an existing and a missing file get
/// the same answer. A job's output stays in its own folder.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DataRootTests(ClusterFixture fixture)
{
    private readonly SamplingTestFiles _files = SamplingTestFiles.Instance;

    private static string NewJobId() => "sample-roots-" + Guid.NewGuid().ToString("N")[..10];

    /// <summary>A file that exists outside the roots: the test binary itself, or /etc/passwd when the build lies under a root.</summary>
    private static string ExistingOutsideFile()
    {
        var roots = new SiloDataRoots(RaeTestSiloConfigurator.TestDataRoots);
        var candidate = new[] { typeof(DataRootTests).Assembly.Location, "/etc/passwd" }.First(path => File.Exists(path) && !roots.IsInside(Path.GetFullPath(path)));
        return candidate;
    }

    /// <summary>The test config with one YAML entry (<paramref name="yamlKey"/>: original path) naming <paramref name="replacement"/>.</summary>
    private SamplingJobSpec SpecNaming(string yamlKey, string original, string replacement)
    {
        var yaml = _files.ConfigYaml();
        var entry = $"{yamlKey}: {original}\n";
        Assert.Contains(entry, yaml);
        return SamplingJobSpecs.FromConfig(RaeConfig.Parse(yaml.Replace(entry, $"{yamlKey}: {replacement}\n", StringComparison.Ordinal), "data-root test config")) with
        {
            Samples = 4,
            UnitSize = 2,
            Classes = 10,
        };
    }

    private async Task<string> RefusalAsync(SamplingJobSpec spec)
    {
        var jobId = NewJobId();
        var error = await Assert.ThrowsAsync<RaeJobException>(() => fixture.Grains.GetGrain<ISamplingJobGrain>(jobId).Start(spec));
        var unknown = await Assert.ThrowsAsync<RaeJobException>(() => fixture.Grains.GetGrain<ISamplingJobGrain>(jobId).GetStatus());
        Assert.Contains("unknown", unknown.Message);
        return error.Message.Replace(jobId, "JOB", StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFileOutsideTheDataRootsIsRefusedWithTheSameMessageWhetherOrNotItExists()
    {
        var existing = ExistingOutsideFile();
        var missing = Path.Combine(Path.GetDirectoryName(existing)!, "no-such-file-" + Guid.NewGuid().ToString("N")[..6] + ".safetensors");
        var escaping = Path.Combine(Path.GetTempPath(), "..", Path.GetRelativePath("/", existing));
        var link = Path.Combine(_files.Folder, "link-" + Guid.NewGuid().ToString("N")[..6] + ".safetensors");
        File.CreateSymbolicLink(link, existing);
        var settings = new (string Key, string YamlKey, string Original)[]
        {
            ("CheckpointPath", "ckpt", _files.CheckpointPath),
            ("stage_1.params.pretrained_decoder_path", "pretrained_decoder_path", _files.DecoderWeightsPath),
            ("stage_1.params.decoder_config_path", "decoder_config_path", _files.DecoderConfigPath),
            ("stage_1.params.normalization_stat_path", "normalization_stat_path", _files.StatsPath),
        };
        foreach (var (key, yamlKey, original) in settings)
        {
            var aboutExisting = await RefusalAsync(SpecNaming(yamlKey, original, existing));
            var aboutMissing = await RefusalAsync(SpecNaming(yamlKey, original, missing));
            Assert.Contains($"{key} '{existing}' is outside the silo's data roots (Rae:Silo:DataRoots)", aboutExisting);
            Assert.Equal(aboutExisting.Replace(existing, "PATH", StringComparison.Ordinal), aboutMissing.Replace(missing, "PATH", StringComparison.Ordinal));
            Assert.DoesNotContain("not found", aboutExisting);
            Assert.Contains("is outside the silo's data roots", await RefusalAsync(SpecNaming(yamlKey, original, escaping)));
        }
        // A link inside a root that leads out of the roots is refused like the file it points to.
        Assert.Contains($"stage_1.params.pretrained_decoder_path '{link}' is outside the silo's data roots",
            await RefusalAsync(SpecNaming("pretrained_decoder_path", _files.DecoderWeightsPath, link)));
        // Inside the roots a missing file is still reported as missing.
        var missingInside = Path.Combine(_files.Folder, "missing-decoder.safetensors");
        Assert.Contains($"stage_1.params.pretrained_decoder_path not found: {missingInside}", await RefusalAsync(SpecNaming("pretrained_decoder_path", _files.DecoderWeightsPath, missingInside)));
    }

    [Fact]
    public async Task AJobWritesOnlyInItsOwnOutputFolder()
    {
        var victim = NewJobId();
        foreach (var output in new[] { $"samples/{victim}", $"samples/{victim}/units", "checkpoints/train-x", "samples", "datasets/imagenet" })
        {
            var message = await RefusalAsync(_files.Spec(4, 2) with { Output = output });
            Assert.Contains($"Output '{output}' is outside the job's own folder 'samples/JOB'", message);
        }
        var slash = await Assert.ThrowsAsync<RaeJobException>(() => fixture.Grains.GetGrain<ISamplingJobGrain>(victim + "/x").Start(_files.Spec(4, 2)));
        Assert.Contains("contains '/'", slash.Message);
    }
}
