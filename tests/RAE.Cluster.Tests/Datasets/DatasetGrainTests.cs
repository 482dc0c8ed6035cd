using System.Text;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Cluster.Tests.Checkpoints;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Data;

namespace RAE.Cluster.Tests.Datasets;

/// <summary>Datasets go through the cluster into its blob store: validated on the client, uploaded in checksummed
/// chunks, committed only when every shard matches the manifest.</summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class DatasetGrainTests(FileSystemStorageCluster cluster) : IDisposable
{
    private readonly TestImageFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private static string NewName(string stem) => $"{stem}-{Guid.NewGuid().ToString("N")[..8]}";

    private IDatasetGrain Dataset(string name) => cluster.Grains.GetGrain<IDatasetGrain>(name);

    private async Task<IReadOnlyList<string>> ListedNamesAsync() =>
        (await cluster.Grains.GetGrain<IDatasetCatalogGrain>(0).List()).Select(d => d.Name).ToList();

    private async Task<(int ExitCode, string Output, string Error)> AddAsync(string name, int shardSize = 4)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var context = new CommandContext(output, error, Json: false, Live: false, CancellationToken.None);
        var exitCode = await DatasetsAddCommand.AddAsync(cluster.Grains, name, ImageSources.Open(_folder.Root),
            new DatasetBuildOptions { ShardSize = shardSize }, context);
        return (exitCode, output.ToString(), error.ToString());
    }

    /// <summary>Four cats, six dogs and a corrupt file among the dogs (1 of 11 offered: under the 10% threshold).</summary>
    private (IReadOnlyList<string> Cats, IReadOnlyList<string> Dogs, string Corrupt) MakeCatsAndDogs()
    {
        var cats = _folder.AddImages("cat", 4);
        var dogs = _folder.AddImages("dog", 6);
        var corrupt = _folder.AddFile("dog/broken.png", [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3, 4, 5]);
        return (cats, dogs, corrupt);
    }

    [Fact]
    public async Task AnImageFolderIsStoredWithCountsPerClassAndTheSkippedFileNamed()
    {
        var (cats, dogs, corrupt) = MakeCatsAndDogs();
        var name = NewName("pets");

        var (exitCode, output, error) = await AddAsync(name);

        Assert.True(exitCode == 0, error);
        Assert.Contains($"skipped {corrupt}:", output);
        Assert.Contains(name, await ListedNamesAsync());
        var shown = await Dataset(name).Describe();
        Assert.Equal(["cat", "dog"], shown.Classes);
        Assert.Equal([4, 6], shown.CountsPerClass);
        Assert.Equal([4, 4, 2], shown.Shards.Select(s => s.Images));
        Assert.Equal(corrupt, Assert.Single(shown.Skipped).Name);

        // The blobs are the models' dataset layout: the manifest parses and every shard verifies and holds the originals.
        var manifest = DatasetManifest.FromJson(Encoding.UTF8.GetString((await cluster.Store.GetAsync($"datasets/{name}/manifest.json")).Data), name);
        var stored = new List<ShardImage>();
        foreach (var shard in manifest.Shards)
            stored.AddRange(manifest.ReadShard(shard, (await cluster.Store.GetAsync($"datasets/{name}/{shard.File}")).Data));
        Assert.Equal(cats.Concat(dogs), stored.Select(image => image.Name));
        Assert.Equal(Enumerable.Repeat(0, 4).Concat(Enumerable.Repeat(1, 6)), stored.Select(image => image.Label));
        Assert.All(stored, image => Assert.Equal(_folder.Read(image.Name), image.Encoded));
    }

    [Fact]
    public async Task AChunkWithAWrongChecksumIsRefusedAndChangesNothing()
    {
        var name = NewName("chunks");
        var grain = Dataset(name);
        var uploadId = await grain.BeginUpload();
        var shard = ImageShard.Write([new ShardImage("a.png", 0, [1, 2, 3])]);

        var error = await Assert.ThrowsAsync<RaeJobException>(() =>
            grain.WriteChunk(new DatasetChunk(uploadId, "shard-00000.bin", 0, shard, DatasetUploader.Sha256Hex([9, 9]))));

        Assert.Contains("fails its checksum", error.Message);
        Assert.Contains(name, error.Message);
        Assert.Contains("shard-00000.bin", error.Message);
        // The refused chunk left nothing behind: the same offset is accepted once the bytes are right.
        await grain.WriteChunk(new DatasetChunk(uploadId, "shard-00000.bin", 0, shard, DatasetUploader.Sha256Hex(shard)));
        Assert.Equal(1, (await grain.FinishShard(uploadId, "shard-00000.bin")).Images);
        await grain.Abort(uploadId);
        Assert.DoesNotContain(name, await ListedNamesAsync());
        Assert.False(await cluster.Store.ExistsAsync($"datasets/{name}/shard-00000.bin"));
    }

    [Fact]
    public async Task AManifestWhoseShardChecksumDiffersIsRefusedAndTheUploadDiscarded()
    {
        var name = NewName("mismatch");
        var grain = Dataset(name);
        var uploadId = await grain.BeginUpload();
        var shard = ImageShard.Write([new ShardImage("a.png", 0, [1, 2, 3]), new ShardImage("b.png", 0, [4])]);
        await grain.WriteChunk(new DatasetChunk(uploadId, "shard-00000.bin", 0, shard, DatasetUploader.Sha256Hex(shard)));
        await grain.FinishShard(uploadId, "shard-00000.bin");
        var manifest = new DatasetDescription(name, "test", ["only"], [2], 2,
            [new DatasetShard("shard-00000.bin", 2, shard.Length, new string('0', 64))], []);

        var error = await Assert.ThrowsAsync<RaeJobException>(() => grain.Commit(uploadId, manifest));

        Assert.Contains("shard-00000.bin", error.Message);
        Assert.Contains(new string('0', 64), error.Message);
        Assert.DoesNotContain(name, await ListedNamesAsync());
        Assert.Contains("no dataset named", (await Assert.ThrowsAsync<RaeJobException>(() => grain.Describe())).Message);
        Assert.False(await cluster.Store.ExistsAsync($"datasets/{name}/shard-00000.bin"));
    }

    [Fact]
    public async Task AHalfUploadedDatasetIsNeverListed()
    {
        var name = NewName("half");
        var grain = Dataset(name);
        var uploadId = await grain.BeginUpload();
        var shard = ImageShard.Write([new ShardImage("a.png", 0, [1])]);
        await grain.WriteChunk(new DatasetChunk(uploadId, "shard-00000.bin", 0, shard, DatasetUploader.Sha256Hex(shard)));
        await grain.FinishShard(uploadId, "shard-00000.bin");

        Assert.True(await cluster.Store.ExistsAsync($"datasets/{name}/shard-00000.bin"));
        Assert.DoesNotContain(name, await ListedNamesAsync());
        Assert.Contains("not committed", (await Assert.ThrowsAsync<RaeJobException>(() => grain.Describe())).Message);
        Assert.True(await grain.Remove());
        Assert.False(await cluster.Store.ExistsAsync($"datasets/{name}/shard-00000.bin"));
    }

    [Fact]
    public async Task ASecondUploadOfTheSameNameIsRefusedUntilRemoved()
    {
        MakeCatsAndDogs();
        var name = NewName("twice");
        Assert.Equal(0, (await AddAsync(name)).ExitCode);

        var refused = await Assert.ThrowsAsync<RaeJobException>(() => Dataset(name).BeginUpload());
        Assert.Contains("already exists", refused.Message);
        Assert.Contains("already exists", (await Assert.ThrowsAsync<RaeJobException>(() => AddAsync(name))).Message);

        Assert.True(await Dataset(name).Remove());
        Assert.DoesNotContain(name, await ListedNamesAsync());
        Assert.Empty(await cluster.Store.ListAsync($"datasets/{name}/").ToListAsync());
        Assert.Contains("no dataset named", (await Assert.ThrowsAsync<RaeJobException>(() => Dataset(name).Describe())).Message);
        Assert.False(await Dataset(name).Remove());
        Assert.Equal(0, (await AddAsync(name, shardSize: 100)).ExitCode);
        Assert.Single((await Dataset(name).Describe()).Shards);
    }

    [Fact]
    public async Task TooManyBadFilesRefuseTheDatasetAsAWholeNamingEachOne()
    {
        _folder.AddImages("digits", 2);
        var empty = _folder.AddFile("digits/empty.png", []);
        var text = _folder.AddFile("digits/notes.txt", "not an image"u8.ToArray());
        var name = NewName("bad");

        var (exitCode, _, error) = await AddAsync(name);

        Assert.Equal(1, exitCode);
        Assert.Contains("refused", error);
        Assert.Contains(empty, error);
        Assert.Contains(text, error);
        Assert.DoesNotContain(name, await ListedNamesAsync());
        Assert.Empty(await cluster.Store.ListAsync($"datasets/{name}/").ToListAsync());
    }

    [Fact]
    public async Task UnreachableStorageIsNamedAndLeavesNothingListed()
    {
        MakeCatsAndDogs();
        var name = NewName("outage");
        bool IsThisDataset(string path) => path.StartsWith($"datasets/{name}/", StringComparison.Ordinal);

        using (cluster.Store.FailFrom(IsThisDataset, path => path.EndsWith("shard-00001.bin", StringComparison.Ordinal)))
        {
            var error = await Assert.ThrowsAsync<RaeJobException>(() => AddAsync(name));
            Assert.Contains("dataset storage failed", error.Message);
            Assert.Contains(cluster.Store.Location, error.Message);
        }
        using (cluster.Store.FailFrom(path => path.StartsWith("datasets", StringComparison.Ordinal), _ => true))
            Assert.Contains("dataset storage failed", (await Assert.ThrowsAsync<RaeJobException>(() => cluster.Grains.GetGrain<IDatasetCatalogGrain>(0).List())).Message);

        Assert.DoesNotContain(name, await ListedNamesAsync());
        Assert.Equal(0, (await AddAsync(name)).ExitCode);
        Assert.Equal([4, 6], (await Dataset(name).Describe()).CountsPerClass);
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData("Upper")]
    [InlineData("-leading-dash")]
    [InlineData("name with space")]
    public async Task BadNamesAreRefusedWithTheReason(string name)
    {
        Assert.NotNull(DatasetNames.Problem(name));
        var error = await Assert.ThrowsAsync<RaeJobException>(() => Dataset(name).BeginUpload());
        Assert.Contains($"dataset name '{name}'", error.Message);
    }

    [Fact]
    public void NamesAreLimitedInLengthAndCharacters()
    {
        Assert.Null(DatasetNames.Problem("fashion-mnist_2"));
        Assert.Equal("a dataset needs a name", DatasetNames.Problem(""));
        Assert.Null(DatasetNames.Problem(new string('a', DatasetNames.MaxLength)));
        Assert.Contains("at most 64", DatasetNames.Problem(new string('a', DatasetNames.MaxLength + 1)));
    }
}
