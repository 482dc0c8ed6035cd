using RAE.Cluster.Tests.Stage2;
using RAE.Configuration;
using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Client;

/// <summary>The <c>eval</c> section as a training job spec takes it: defaults, our keys, and the refusals naming the key.</summary>
public sealed class OnlineEvaluationSpecTests
{
    private const string Stage1 = """

        stage_1:
          target: stage1.RAE
          params:
            encoder_cls: Dinov2withNorm
            decoder_config_path: configs/decoder/demo
            decoder_patch_size: 16
        """;

    private static TrainingJobSpec Spec(string extra, params string[] overrides) =>
        TrainingJobSpecs.FromConfig(RaeConfig.Parse(DiTTestJobs.TinyConfig + extra, "eval spec test", overrides), ranks: 1);

    [Fact]
    public void AStage2JobSamplesWithItsSeedAgainstTheNamedDatasetAndReportsFdResNet18UnlessFidHasWeights()
    {
        var online = Spec(Stage1 + "\neval:\n  eval_interval: 3\n  num_samples: 12\n  data_path: shapes\n").OnlineEvaluation!;
        Assert.Equal((3L, EvaluationMetric.FdResNet18, 12, 7L, "shapes"), (online.Interval, online.Metric, online.Samples, online.Seed, online.ReferenceDataset));
        Assert.Equal([false, false, true, false, false, true], Enumerable.Range(1, 6).Select(step => online.IsDue(step)));
        Assert.False(online.IsDue(0));

        var fid = Spec(Stage1 + "\neval:\n  eval_interval: 3\n  metrics: [fid]\n  inception_path: /w/pt_inception.pth\n  data_path: shapes\n  seed: 11\n").OnlineEvaluation!;
        Assert.Equal((EvaluationMetric.Fid, "/w/pt_inception.pth", 11L), (fid.Metric, fid.InceptionWeightsPath, fid.Seed));
        Assert.Null(Spec("").OnlineEvaluation);
    }

    [Theory]
    [InlineData("\neval:\n  eval_interval: 3\n  data_path: shapes\n", false, "eval", "needs a 'stage_1' section")]
    [InlineData("\neval:\n  eval_interval: 3\n", true, "eval.data_path", "names none")]
    [InlineData("\neval:\n  eval_interval: 3\n  metrics: [fid]\n  data_path: shapes\n", true, "eval.inception_path", "pt_inception-2015-12-05")]
    [InlineData("\neval:\n  eval_interval: 3\n  num_samples: 0\n  data_path: shapes\n", true, "eval.num_samples", "must be > 0")]
    [InlineData("\neval:\n  eval_interval: 0\n  data_path: shapes\n", true, "eval.eval_interval", "must be > 0")]
    public void AnEvaluationTheJobCannotRunIsRefusedNamingTheKey(string eval, bool withStage1, string key, string problem)
    {
        var error = Assert.Throws<ConfigException>(() => Spec((withStage1 ? Stage1 : "") + eval));
        Assert.Equal(key, error.KeyPath);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void OurEvalKeysSurviveTheCanonicalFormAndTheReferencesKeepTheirs()
    {
        var config = RaeConfig.Parse(DiTTestJobs.TinyConfig + Stage1 + "\neval:\n  eval_interval: 3\n  num_samples: 12\n  seed: 4\n  data_path: shapes\n", "eval canonical test");
        var again = RaeConfig.Parse(JobConfiguration.From(config).Yaml, "canonical");
        Assert.Equal((12, 4L, "shapes"), (again.Eval!.NumSamples, again.Eval.Seed, again.Eval.DataPath));
        var reference = RaeConfig.Parse(DiTTestJobs.TinyConfig + Stage1 + "\neval:\n  eval_interval: 3\n", "reference eval");
        var evalKeys = EvalSectionKeys(JobConfiguration.From(reference).Yaml);
        Assert.Contains("eval_interval", evalKeys);
        Assert.DoesNotContain("num_samples", evalKeys);
        Assert.DoesNotContain("seed", evalKeys);
        Assert.DoesNotContain("inception_path", evalKeys);
    }

    /// <summary>The keys of the top-level <c>eval</c> mapping of a YAML text.</summary>
    private static List<string> EvalSectionKeys(string yaml)
    {
        var lines = yaml.Split('\n');
        var start = Array.FindIndex(lines, line => line.TrimEnd() == "eval:");
        Assert.True(start >= 0, "no eval section in:\n" + yaml);
        return lines.Skip(start + 1).TakeWhile(line => line.StartsWith(' ')).Select(line => line.Trim().Split(':')[0]).ToList();
    }
}
