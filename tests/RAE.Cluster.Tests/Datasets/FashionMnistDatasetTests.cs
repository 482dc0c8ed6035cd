using System.Diagnostics;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Cluster.Tests.Checkpoints;
using RAE.GrainInterfaces;
using RAE.Models.Data;
using Xunit.Abstractions;

namespace RAE.Cluster.Tests.Datasets;

/// <summary>The real Fashion-MNIST test split (Debian's dataset-fashion-mnist) through the cluster; skipped when not installed.</summary>
[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class FashionMnistDatasetTests(FileSystemStorageCluster cluster, ITestOutputHelper log)
{
    private const string Folder = FashionMnistFactAttribute.Folder;

    [FashionMnistFact]
    public async Task TheTestSplitIsAddedWithAThousandImagesPerClass()
    {
        var name = $"fashion-mnist-t10k-{Guid.NewGuid().ToString("N")[..8]}";
        using var output = new StringWriter();
        using var error = new StringWriter();
        var clock = Stopwatch.StartNew();

        var exitCode = await DatasetsAddCommand.AddAsync(cluster.Grains, name, ImageSources.Open(Folder, "t10k"),
            new DatasetBuildOptions { ShardSize = 1000 }, new CommandContext(output, error, false, false, CancellationToken.None));

        clock.Stop();
        Assert.True(exitCode == 0, error.ToString());
        var shown = await cluster.Grains.GetGrain<IDatasetGrain>(name).Describe();
        Assert.Equal(Enumerable.Repeat(1000, 10), shown.CountsPerClass);
        Assert.Equal(10, shown.Shards.Count);
        Assert.Empty(shown.Skipped);
        log.WriteLine($"added {shown.ImageCount} images ({shown.TotalBytes / 1024.0 / 1024.0:F1} MiB in {shown.Shards.Count} shards) in {clock.Elapsed.TotalSeconds:F1} s: {shown.ImageCount / clock.Elapsed.TotalSeconds:F0} images/s validated and uploaded");
        Assert.True(await cluster.Grains.GetGrain<IDatasetGrain>(name).Remove());
    }
}

/// <summary>A fact that needs the real Fashion-MNIST IDX files; skipped with the reason otherwise.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public const string Folder = "/usr/share/datasets/fashion-mnist";

    public FashionMnistFactAttribute()
    {
        if (!File.Exists(Path.Combine(Folder, "t10k-images-idx3-ubyte.gz")))
            Skip = $"Fashion-MNIST is not installed ({Folder}/t10k-images-idx3-ubyte.gz missing; apt-get install dataset-fashion-mnist)";
    }
}
