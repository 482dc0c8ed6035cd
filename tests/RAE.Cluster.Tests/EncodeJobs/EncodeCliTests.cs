using System.Text.Json;
using RAE.Cluster.Tests.Client;

namespace RAE.Cluster.Tests.EncodeJobs;

/// <summary>`rae encode`, `rae jobs show` of an encode job and `rae latents list|show|remove` against an embedded silo.</summary>
public sealed class EncodeCliTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>
{
    private Task<(int ExitCode, string Output, string Error)> Rae(params string[] args) =>
        Cli.RunAsync([.. args, "--gateway", silo.Gateway, "--cluster-id", "cli-test"]);

    [Fact]
    public async Task EncodeFollowsTheJobToItsEndAndTheLatentsAreListedShownAndRemoved()
    {
        var images = EncodeTestData.WriteImageFolder(classes: 2, perClass: 3);
        var config = Path.Combine(silo.DataFolder, "encode.yaml");
        await File.WriteAllTextAsync(config, EncodeTestData.Config().ToYaml());
        try
        {
            var dataset = $"cli-encode-{Guid.NewGuid().ToString("N")[..8]}";
            var added = await Rae("datasets", "add", dataset, images, "--shard-size", "4");
            Assert.True(added.ExitCode == 0, added.Error);

            var unknown = await Rae("encode", config, "--dataset", "no-such-images");
            Assert.Equal(1, unknown.ExitCode);
            Assert.Contains("no dataset named 'no-such-images'", unknown.Error);

            var (exitCode, output, error) = await Rae("encode", config, "--dataset", dataset, "--json");
            Assert.True(exitCode == 0, error + output);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
            var jobId = lines[0].GetProperty("jobId").GetString()!;
            var latents = lines[0].GetProperty("latentName").GetString()!;
            Assert.Equal($"{dataset}-resnet18-64", latents);
            var end = lines[^1];
            Assert.Equal(("end", "Completed", 2), (end.GetProperty("kind").GetString(), end.GetProperty("state").GetString(), end.GetProperty("done").GetInt32()));

            var shown = await Rae("jobs", "show", jobId);
            Assert.True(shown.ExitCode == 0, shown.Error);
            Assert.Contains($"(encode, dataset {dataset} -> latents/{latents})", shown.Output);
            Assert.Contains("shards 2/2, images 6/6", shown.Output);
            Assert.Contains(jobId, (await Rae("jobs", "list")).Output);

            var listed = await Rae("latents", "list");
            Assert.Contains(latents, listed.Output);
            var described = await Rae("latents", "show", latents);
            Assert.Contains("6 latents [512, 2, 2] float32 in 2 shards", described.Output);
            Assert.Equal(0, (await Rae("latents", "remove", latents)).ExitCode);
            var gone = await Rae("latents", "show", latents);
            Assert.Equal(1, gone.ExitCode);
            Assert.Contains($"no latent dataset named '{latents}'", gone.Error);
        }
        finally
        {
            Directory.Delete(images, recursive: true);
        }
    }
}
