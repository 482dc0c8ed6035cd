using System.Text.Json;
using RAE.Cluster.Tests.Client;

namespace RAE.Cluster.Tests.Datasets;

/// <summary>`rae datasets add|list|show|remove` against an embedded silo: the client reaches the store only through the gateway.</summary>
public sealed class DatasetsCliTests(CliSiloFixture silo) : IClassFixture<CliSiloFixture>, IDisposable
{
    private readonly TestImageFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private Task<(int ExitCode, string Output, string Error)> Rae(params string[] args) =>
        Cli.RunAsync([.. args, "--gateway", silo.Gateway, "--cluster-id", "cli-test"]);

    [Fact]
    public async Task AddListShowRemoveRoundTrip()
    {
        _folder.AddImages("airplane", 5);
        _folder.AddImages("ship", 5);
        var corrupt = _folder.AddFile("ship/zz-truncated.png", [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]);

        var add = await Rae("datasets", "add", "boats", _folder.Root, "--shard-size", "3", "--json");
        Assert.True(add.ExitCode == 0, add.Error);
        using (var added = JsonDocument.Parse(add.Output))
        {
            Assert.Equal(10, added.RootElement.GetProperty("imageCount").GetInt32());
            Assert.Equal(4, added.RootElement.GetProperty("shards").GetArrayLength());
            Assert.Equal(corrupt, added.RootElement.GetProperty("skipped")[0].GetProperty("name").GetString());
        }

        var list = await Rae("datasets", "list");
        Assert.Equal(0, list.ExitCode);
        Assert.Matches(@"boats\s+10 images\s+2 classes\s+4 shards\s+1 skipped", list.Output);

        var show = await Rae("datasets", "show", "boats");
        Assert.Equal(0, show.ExitCode);
        Assert.Matches(@"0\s+airplane\s+5", show.Output);
        Assert.Matches(@"1\s+ship\s+5", show.Output);
        Assert.Contains($"{corrupt}: ", show.Output);

        Assert.Equal(1, (await Rae("datasets", "add", "boats", _folder.Root)).ExitCode);
        Assert.Equal(0, (await Rae("datasets", "remove", "boats")).ExitCode);
        var gone = await Rae("datasets", "show", "boats");
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains("no dataset named 'boats'", gone.Error);
        Assert.Equal(1, (await Rae("datasets", "remove", "boats")).ExitCode);
    }

    [Theory]
    [InlineData("datasets", "add", "../up", "{root}")]
    [InlineData("datasets", "add", "ok", "/no/such/folder")]
    [InlineData("datasets", "add", "ok", "{root}", "--shard-size", "0")]
    [InlineData("datasets", "show", "Bad Name")]
    public async Task BadInputExitsTwoNamingTheProblem(params string[] args)
    {
        _folder.AddImages("one", 1);
        var (exitCode, output, error) = await Rae(args.Select(a => a == "{root}" ? _folder.Root : a).ToArray());
        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        Assert.Contains(args[2] == "ok" ? (args.Length > 4 ? "--shard-size" : "/no/such/folder") : args[2], error);
    }
}
